"""The objective on tiny real data: pruning, divergence, best-epoch score, kept models."""

from __future__ import annotations

import math

import optuna
import pytest

from search import storage as st
from search import studies
from search.artifacts import keeper, kept_models, open_artifact_store
from search.config import parse_config
from search.data import load_split
from search.objective import Objective
from tests.helpers import raw_config

pytestmark = pytest.mark.slow


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


@pytest.fixture
def tiny_split(real_data_dir):
    cfg = parse_config(raw_config())
    return cfg, load_split(cfg.data, real_data_dir)


def _study(tmp_path, cfg, pruner=None):
    storage = st.open_storage(f"sqlite:///{tmp_path}/o.db")
    pruner = pruner or optuna.pruners.NopPruner()
    return studies.create_or_load_study(storage, cfg, pruner=pruner)[0]


def test_complete_trial_reports_every_epoch_and_returns_best_epoch(tmp_path, tiny_split):
    cfg, split = tiny_split
    study = _study(tmp_path, cfg)
    store = open_artifact_store(tmp_path / "art")
    study.optimize(Objective(cfg, split, keep=keeper(store, k=cfg.study.keep_models)), n_trials=1)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert len(t.intermediate_values) == 2  # one report per epoch (epochs = 2)
    assert t.value == max(t.intermediate_values.values())
    assert t.user_attrs["best_epoch"] in (1, 2) and t.user_attrs["epochs_run"] == 2
    for key in ("n_params", "sec_per_epoch", "end_reason", "hyperparams", "architecture"):
        assert key in t.user_attrs
    assert t.user_attrs["end_reason"] == "completed"
    assert "precision" not in t.user_attrs  # recorded for "auto" only: float32 is the config's
    assert kept_models(study)[0]["trial"] == 0


def test_precision_auto_records_what_the_cpu_flags_chose_and_builds_the_net_in_it(
    tmp_path, real_data_dir, monkeypatch
):
    import search.model
    import search.training

    cfg = parse_config(raw_config(precision="auto"))
    split = load_split(cfg.data, real_data_dir)
    dtypes = []

    def build(*args, **kwargs):
        model = search.model.build_model(*args, **kwargs)
        dtypes.append(model.get_layer("dense_1").compute_dtype)
        return model

    monkeypatch.setattr(search.training, "build_model", build)
    recorded = []
    for i, flags in enumerate((frozenset({"avx2", "avx512_bf16"}), frozenset({"amx_bf16"}))):
        monkeypatch.setattr(search.model, "cpu_flags", lambda f=flags: f)
        (tmp_path / str(i)).mkdir()
        study = _study(tmp_path / str(i), cfg, pruner=AlwaysPrune())
        study.optimize(Objective(cfg, split), n_trials=1)
        recorded.append(study.trials[0].user_attrs["precision"])
    assert recorded == ["float32", "mixed_bfloat16"]
    assert dtypes == ["float32", "bfloat16"]


def test_forced_pruner_prunes_after_first_epoch(tmp_path, tiny_split):
    cfg, split = tiny_split
    study = _study(tmp_path, cfg, pruner=AlwaysPrune())
    study.optimize(Objective(cfg, split), n_trials=1)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.PRUNED
    assert t.user_attrs["end_reason"] == "pruned" and t.user_attrs["epochs_run"] == 1


def test_divergence_ends_the_trial_as_pruned_with_the_reason(tmp_path, real_data_dir):
    # 1e30: the first update overflows float32, so the loss is inf or NaN whatever the sampled
    # widths and dropout (at 1e6 the ReLUs could all die first and the clipped loss stay finite).
    raw = raw_config(optimizer="sgd", learning_rate=1e30, momentum=0.9, epochs=5)
    cfg = parse_config(raw)
    split = load_split(cfg.data, real_data_dir)
    study = _study(tmp_path, cfg)
    study.optimize(Objective(cfg, split), n_trials=1)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.PRUNED
    assert t.user_attrs["end_reason"] == "diverged"
    assert "loss became" in t.user_attrs["end_detail"]
    assert t.user_attrs["epochs_run"] == 1  # stopped at once, not trained to the end


def test_only_top_k_models_stay_on_disk(tmp_path, tiny_split):
    cfg, split = tiny_split  # keep_models = 2
    study = _study(tmp_path, cfg)
    store_dir = tmp_path / "art"
    study.optimize(
        Objective(cfg, split, keep=keeper(open_artifact_store(store_dir), k=cfg.study.keep_models)),
        n_trials=4,
    )
    kept = kept_models(study)
    assert len(kept) == 2 and kept[0]["value"] >= kept[1]["value"]
    assert sorted(p.name for p in store_dir.iterdir()) == sorted(e["artifact_id"] for e in kept)
    best = max(t.value for t in study.trials if t.value is not None and math.isfinite(t.value))
    assert kept[0]["value"] == best


def test_a_raising_trial_records_its_error(tmp_path, tiny_split, monkeypatch):
    cfg, split = tiny_split
    study = _study(tmp_path, cfg)
    objective = Objective(cfg, split)
    monkeypatch.setattr(objective, "_train", lambda trial, hp: 1 / 0)
    study.optimize(objective, n_trials=1, catch=(Exception,))
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.FAIL
    assert "ZeroDivisionError" in t.user_attrs["error"]
