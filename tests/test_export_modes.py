"""Export modes (issue #14): refit on train + validation, top-k ensembles, a size budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from search import datasets, exporting
from search.config import load_config
from tests.helpers import invoke


def _copy(tiny_study, tmp_path):
    s = tiny_study.copy_to(tmp_path / "study")
    return ["--study", s.name, "--storage", s.storage, "--artifacts", s.artifacts]


def _export(args, real_data_dir, out: Path, *extra):
    r = invoke("export", *args, "--data-dir", real_data_dir, "--out", out, *extra)
    assert r.exit_code == 0, r.output
    return json.loads((out / "model-card.json").read_text()), r.output


def _fresh_accuracy(model: Path, x: np.ndarray, y: np.ndarray, tmp_path: Path) -> float:
    """Test accuracy of model.keras in a new process that imports Keras and NumPy only."""
    np.savez(tmp_path / "test.npz", x=x, y=y)
    code = (
        "import sys; sys.modules['search'] = None\n"
        "import numpy as np, keras\n"
        f"z = np.load({str(tmp_path / 'test.npz')!r})\n"
        f"m = keras.saving.load_model({str(model)!r})\n"
        "p = np.asarray(m.predict(z['x'], verbose=0)).argmax(1)\n"
        "print(float(np.mean(p == z['y'])))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return float(r.stdout.strip().splitlines()[-1])


def _optimizer_variables(model: Path) -> list[str]:
    """Paths of optimizer variables saved in a .keras file (an export needs none)."""
    import io

    import h5py

    found: list[str] = []
    with zipfile.ZipFile(model) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h:
        h.visit(lambda name: found.append(name) if "optimizer" in name else None)
    return found


def _tiny_settings():
    from tests.tiny_study import TINY_GRID_TOML

    return load_config("tiny-grid.toml", text=TINY_GRID_TOML).data


def _tiny_test_set(real_data_dir):
    return datasets.load_test(_tiny_settings(), real_data_dir)


def _record_fits(monkeypatch) -> list[tuple]:
    """Every keras Model.fit call from now on, still run: (model, x, y) as passed."""
    import keras

    fits: list[tuple] = []
    real_fit = keras.Model.fit

    def fit(self, x=None, y=None, *args, **kwargs):
        fits.append((self, np.asarray(x), np.asarray(y)))
        return real_fit(self, x, y, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    return fits


def _rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """The (input row, label) pairs as sorted bytes: the same rows in any order compare equal."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    return sorted(x[i].tobytes() + y[i].tobytes() for i in range(len(y)))


@pytest.mark.slow
def test_ensemble_is_one_plain_model_scored_on_validation_before_test(
    tiny_study, tmp_path, real_data_dir, monkeypatch
):
    args = _copy(tiny_study, tmp_path)
    order = []
    score, load_test = exporting.validation_score, datasets.load_test
    monkeypatch.setattr(
        exporting, "validation_score", lambda *a: order.append("validation") or score(*a)
    )
    monkeypatch.setattr(datasets, "load_test", lambda *a: order.append("test") or load_test(*a))
    card, output = _export(args, real_data_dir, tmp_path / "ens", "--no-refit", "--ensemble", "2")
    assert order == ["validation", "test"]  # test read once, after the ensemble was scored
    info = card["export"]
    assert info["mode"] == "ensemble" and len(info["members"]) == 2
    assert 0 < info["ensemble_validation_value"] <= 1 and "ensemble" in output
    assert _optimizer_variables(tmp_path / "ens" / "model.keras") == []
    x, y = _tiny_test_set(real_data_dir)
    got = _fresh_accuracy(tmp_path / "ens" / "model.keras", x, y, tmp_path)
    assert got == pytest.approx(card["test_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_refit_trains_on_the_train_and_validation_rows_and_reloads_with_plain_keras(
    tiny_study, tmp_path, real_data_dir, monkeypatch
):
    args = _copy(tiny_study, tmp_path)
    fits = _record_fits(monkeypatch)
    card, output = _export(args, real_data_dir, tmp_path / "refit", "--refit", "--ensemble", "1")
    (refit,) = card["export"]["refit"]
    assert card["export"]["mode"] == "refit" and "(at selection)" in output
    assert refit["rows"] == 2000 + 500 and refit["epochs"] == card["best_epoch"]
    # The rows it was fitted on are exactly the study's training and validation rows (in any
    # order): not a count that happens to match, nor test rows.
    split = datasets.load_split(_tiny_settings(), real_data_dir)
    ((_, x, y),) = fits
    expected = _rows(np.concatenate([split.x_train, split.x_val]),
                     np.concatenate([split.y_train, split.y_val]))  # fmt: skip
    got = _rows(x, y)
    not_fitted = sum((Counter(expected) - Counter(got)).values())
    assert not_fitted == 0 and len(got) == len(expected), f"{not_fitted} rows not fitted on"
    assert card["validation_value"] == card["export"]["member_validation_values"][0]
    with zipfile.ZipFile(tmp_path / "refit" / "model.keras") as z:  # no optimizer state
        assert not json.loads(z.read("config.json")).get("compile_config")
    x, y = _tiny_test_set(real_data_dir)
    got = _fresh_accuracy(tmp_path / "refit" / "model.keras", x, y, tmp_path)
    assert got == pytest.approx(card["test_accuracy"], abs=1e-9)
    # Seeded: the same refit gives the same model.
    again, _ = _export(args, real_data_dir, tmp_path / "refit2", "--refit", "--ensemble", "1")
    assert again["test_accuracy"] == card["test_accuracy"]


@pytest.mark.slow
def test_folds_cross_validates_the_candidates_and_exports_the_winners_fold_models(
    tiny_study, tmp_path, real_data_dir, monkeypatch
):
    """--folds 3 --ensemble 2: two configurations, three fits each; every fit leaves out
    exactly one fold of train + validation (each row left out once per configuration); the
    export is the configuration with the best out-of-fold score, as its 3 fold models."""
    args = _copy(tiny_study, tmp_path)
    fits = _record_fits(monkeypatch)
    card, output = _export(args, real_data_dir, tmp_path / "bag", "--folds", "3", "--ensemble", "2")
    bag = card["export"]["folds"]
    assert card["export"]["mode"] == "folds" and bag["k"] == 3 and bag["rows"] == 2500
    assert len(bag["candidates"]) == 2 and len(fits) == 6
    best = max(bag["candidates"], key=lambda c: c["cv_value"])
    assert bag["selected"] == best["trial"] == card["trial"] == card["export"]["members"][0]
    assert bag["cv_value"] == best["cv_value"] and "out-of-fold val_accuracy" in output
    split = datasets.load_split(_tiny_settings(), real_data_dir)
    every = Counter(_rows(np.concatenate([split.x_train, split.x_val]),
                          np.concatenate([split.y_train, split.y_val])))  # fmt: skip
    for first in (0, 3):  # each configuration's three fits
        seen = Counter()
        for _, x, y in fits[first : first + 3]:
            got = Counter(_rows(x, y))
            assert not got - every  # only training rows, each at most once
            seen += got
        assert seen == Counter({row: 2 * n for row, n in every.items()})  # left out once
    with zipfile.ZipFile(tmp_path / "bag" / "model.keras") as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    folds = [x["config"]["name"] for x in layers if x["config"]["name"].startswith("fold_")]
    assert len(folds) == 3, folds
    x, y = _tiny_test_set(real_data_dir)
    got = _fresh_accuracy(tmp_path / "bag" / "model.keras", x, y, tmp_path)
    assert got == pytest.approx(card["test_accuracy"], abs=1e-9)
    assert (
        "3-fold bag: of the 2 best configurations"
        in (tmp_path / "bag" / "model-card.md").read_text()
    )


@pytest.mark.parametrize(
    ("extra", "says"),
    [(["--folds", "1"], "--folds must be 0 (off) or between 2 and 20, got 1"),
     (["--folds", "21"], "--folds must be 0 (off) or between 2 and 20, got 21"),
     (["--folds", "3", "--no-refit"], "cannot be combined with --no-refit"),
     (["--folds", "3", "--max-params", "100000"],
      "--folds 3 exports 3 networks and this export has a parameter budget of 100,000")],
    ids=["one-fold", "21-folds", "no-refit", "under-a-budget"],
)  # fmt: skip
def test_export_with_a_bad_folds_value_is_one_line_and_exit_2(tiny_study, tmp_path, extra, says):
    out = tmp_path / "bag"
    r = invoke("export", *_copy(tiny_study, tmp_path), "--out", out, *extra)
    assert r.exit_code == 2 and says in r.output, r.output
    assert r.output.strip().count("\n") == 0 and not out.exists()


@pytest.mark.parametrize(
    ("extra", "says"),
    [(["--folds", "-1"], "--folds must be 0 (off) or between 2 and 20, got -1"),
     (["--folds", "5", "--no-refit"], "cannot be combined with --no-refit")],
    ids=["negative-folds", "no-refit"],
)  # fmt: skip
def test_run_with_a_bad_folds_value_is_one_line_before_any_study(tmp_path, extra, says):
    db = tmp_path / "s.db"
    r = invoke("run", "--trials", "1", "--storage", f"sqlite:///{db}", *extra)
    assert r.exit_code == 2 and says in r.output, r.output
    assert r.output.strip().count("\n") == 0 and not db.exists()


@pytest.mark.parametrize("stratify", [True, False], ids=["classes", "regression"])
def test_fold_ids_deal_every_row_to_one_fold_in_near_equal_seeded_parts(stratify):
    y = np.repeat([0, 1, 2], [50, 31, 7])
    folds = exporting.fold_ids(y, 5, seed=3, stratify=stratify)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.sum() == len(y) and sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, exporting.fold_ids(y, 5, seed=3, stratify=stratify))
    assert not np.array_equal(folds, exporting.fold_ids(y, 5, seed=4, stratify=stratify))
    if stratify:  # each class spread over the folds as evenly as it can be
        for c in range(3):
            per_fold = np.bincount(folds[y == c], minlength=5)
            assert per_fold.max() - per_fold.min() <= 1, (c, per_fold)


def test_ensemble_larger_than_the_kept_models_says_what_to_do(tiny_study, tmp_path):
    args = _copy(tiny_study, tmp_path)
    r = invoke("export", *args, "--no-refit", "--ensemble", "3")
    assert r.exit_code == 2 and "--ensemble 3 needs 3 kept models" in r.output
    assert "--refit" in r.output and r.output.strip().count("\n") == 0


def test_max_params_below_every_trial_is_one_line(tiny_study, tmp_path):
    r = invoke("export", *_copy(tiny_study, tmp_path), "--no-refit", "--max-params", "100")
    assert r.exit_code == 2 and "at most 100 parameters" in r.output


# A grid of three one-layer widths around a 20,000-parameter budget: 795 * width + 10
# parameters, so 16 -> 12,730 and 24 -> 19,090 fit and 48 -> 38,170 does not. The grid runs
# every point, so the over-budget configuration is always tried (a sampled space may never
# reach it, and then no assertion about it can fail).
BUDGET_TOML = """
[study]
name = "budget"
seed = 1
sampler = "grid"
pruner = "none"
keep_models = 3
max_params = 20000

[model]
width_per_layer = false

[data]
validation_size = 500
train_size = 2000
test_size = 1000

[train]
steps_per_execution = 8
validation_batch_size = 500

[space]
layers = 1
width = [16, 24, 48]
activation = "relu"
optimizer = "sgd"
learning_rate = 0.05
momentum = 0.9
regularizer = "none"
reg_strength = 0.0
dropout = 0.0
batch_size = 64
epochs = 2
lr_schedule = "cosine"
"""


@pytest.mark.slow
def test_a_constrained_study_trains_only_trials_within_max_params_and_exports_within_it(
    workdir, real_data_dir
):
    budget = 20_000
    cfg = workdir / "budget.toml"
    cfg.write_text(BUDGET_TOML)
    r = invoke("run", "--config", cfg, "--trials", "3", "--data-dir", real_data_dir)
    assert r.exit_code == 0, r.output
    from search.api import load_study

    trials = load_study("budget").trials
    n_params = {t.params["width"]: t.user_attrs["n_params"] for t in trials}
    assert n_params == {16: 12_730, 24: 19_090, 48: 38_170}
    by_width = {t.params["width"]: t for t in trials}
    over = by_width[48]  # pruned before it trained: no epoch was scored
    assert over.state.name == "PRUNED" and over.user_attrs.get("end_reason") == "over budget"
    assert over.intermediate_values == {}
    assert [by_width[w].state.name for w in (16, 24)] == ["COMPLETE", "COMPLETE"]
    card = json.loads(Path("studies/budget/best/model-card.json").read_text())
    assert card["export"]["max_params"] == budget
    assert card["parameter_count"] in (12_730, 19_090)  # one model within the budget
    # Members of an ensemble are rebuilt with their cosine schedule (needs the step count);
    # the ensemble holds both models within the budget, nothing else (Average adds none).
    card, _ = _export(
        ["--study", "budget"], real_data_dir, workdir / "ens", "--no-refit", "--ensemble", "2"
    )
    assert card["export"]["mode"] == "ensemble"
    assert sorted(card["export"]["members"]) == sorted(by_width[w].number for w in (16, 24))
    assert card["parameter_count"] == 12_730 + 19_090


@pytest.mark.slow
def test_default_export_is_the_mean_of_the_three_best_refit(
    tiny_study, tmp_path, real_data_dir, monkeypatch
):
    import keras

    from search.api import load_study
    from search.metrics import of_study

    args = _copy(tiny_study, tmp_path)
    fits = _record_fits(monkeypatch)
    card, output = _export(args, real_data_dir, tmp_path / "default")
    study = load_study(args[1], storage=args[3])
    metric = of_study(study)
    completed = sorted(
        (t for t in study.trials if t.state.name == "COMPLETE"),
        key=lambda t: metric.rank_key(t.value),
    )
    best3 = [t.number for t in completed[:3]]
    info = card["export"]
    assert info["members"] == best3 and [r["trial"] for r in info["refit"]] == best3
    assert info["mode"] == ("refit ensemble" if len(best3) > 1 else "refit")
    assert all(r["rows"] == 2000 + 500 for r in info["refit"])
    assert _optimizer_variables(tmp_path / "default" / "model.keras") == []
    assert output.count("refitting trial #") == len(best3)
    md = (tmp_path / "default" / "model-card.md").read_text()
    assert f"(mode `{info['mode']}`)" in md and "trained again on train + validation" in md
    x, y = _tiny_test_set(real_data_dir)
    got = _fresh_accuracy(tmp_path / "default" / "model.keras", x, y, tmp_path)
    assert got == pytest.approx(card["test_accuracy"], abs=1e-9)
    # What it computes: the mean of the refit members' outputs, row by row.
    assert len(fits) == len(best3)
    rows = x[:64]
    exported = keras.saving.load_model(tmp_path / "default" / "model.keras")
    mean = np.mean([np.asarray(m.predict(rows, verbose=0)) for m, _, _ in fits], axis=0)
    np.testing.assert_allclose(np.asarray(exported.predict(rows, verbose=0)), mean, atol=1e-5)


def test_the_55k_study_is_the_default_space_with_the_lab_nets_size_as_budget():
    from benchmarks.budget import mlp_params
    from search.model import build_model
    from search.space import Hyperparams

    studies = Path(__file__).resolve().parent.parent / "studies"
    default = load_config(studies / "fashion-mnist-mlp.toml")
    budget = load_config(studies / "fashion-mnist-55k.toml")
    assert budget.study.max_params == 55_000 and not default.study.max_params
    assert budget.space == default.space and budget.data == default.data
    # The lab report's 784x64x64x10 (55,050 parameters) is just over the budget.
    lab = build_model(Hyperparams(widths=(64, 64)))
    assert lab.count_params() == mlp_params([64, 64]) == 55_050


@pytest.mark.slow
def test_no_refit_alone_averages_up_to_three_of_the_kept_models(
    tiny_study, tmp_path, real_data_dir
):
    from search.api import load_study
    from search.artifacts import kept_models

    args = _copy(tiny_study, tmp_path)
    card, _ = _export(args, real_data_dir, tmp_path / "kept", "--no-refit")
    kept = kept_models(load_study(args[1], storage=args[3]))
    assert "refit" not in card["export"]
    assert len(card["export"]["members"]) == min(3, len(kept)) >= 1
    assert set(card["export"]["members"]) <= {e["trial"] for e in kept}


def _card_of(members: list[int], *, refit: bool, **extra) -> dict:
    """A model card as export_best writes it, for the markdown renderer (no training)."""
    export = {
        "mode": " ".join(w for w, on in (("refit", refit), ("ensemble", len(members) > 1)) if on)
        or "selected",
        "members": members,
        "member_validation_values": [0.90 - i / 1000 for i in range(len(members))],
        "member_architectures": [f"784x{100 + i}x10" for i in range(len(members))],
        "train_rows": 50_000,
        **extra,
    }
    if refit:
        export["refit"] = [
            {"trial": n, "epochs": 12 - i, "seed": 7 + i, "rows": 60_000}
            for i, n in enumerate(members)
        ]
    return {
        "study": "s", "trial": members[0], "architecture": "784x100x10", "parameter_count": 1234,
        "metric": "val_accuracy", "validation_value": 0.9, "best_epoch": 12, "epochs_run": 12,
        "test_metrics": ["test_accuracy"], "test_accuracy": 0.89, "test_examples": 10_000,
        "seed": 42, "sampler": "tpe", "pruner": "hyperband", "hyperparams": {}, "versions": {},
        "data": {"files_sha256": {}, "inputs": "784 floats"}, "export": export,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("members", "refit", "extra", "says"),
    [
        ([5], False, {}, ["# Model card: s trial 5", "model as the search kept it",
                          "50,000 training rows", "(mode `selected`)"]),
        ([5], True, {}, ["# Model card: s trial 5", "refit: the selected configuration",
                         "(60,000 rows) for 12 epochs, seed 7"]),
        ([5, 2, 9], False, {"ensemble_validation_value": 0.9123},
         ["# Model card: s, ensemble of trials #5, #2, #9", "mean of 3 networks' outputs",
          "**784x100x10**, **784x101x10**, **784x102x10**", "of the ensemble **0.9123**",
          "Best member (trial #5)", "## Hyperparameters of the best member, trial #5"]),
        ([5, 2], True, {"max_params": 55_000},
         ["ensemble of trials #5, #2", "refit ensemble: the 2 best configurations",
          "epochs #5 12, #2 11", "at selection #5 0.9000, #2 0.8990",
          "at most 55,000 parameters per model"]),
        ([2], False, {"mode": "folds", "folds": {"k": 5, "rows": 60_000, "selected": 2,
                                                 "cv_value": 0.91, "candidates": [
                                   {"trial": 5, "epochs": 12, "validation_value": 0.9,
                                    "cv_value": 0.8999},
                                   {"trial": 2, "epochs": 1, "validation_value": 0.899,
                                    "cv_value": 0.91}]}},
         ["5-fold bag: of the 2 best configurations", "(60,000 rows), trial #2 had the best",
          "#5 0.8999 (at selection 0.9000), #2 0.9100 (at selection 0.8990)",
          "its 5 fold models, each trained on all rows but one fold for 1 epoch,",
          "(mode `folds`)", "the mean of 5 fold networks' outputs, each **784x100x10** (1,234 "
          "parameters in all)"]),
    ],
    ids=["selected", "refit", "ensemble", "refit-ensemble-budget", "folds"],
)  # fmt: skip
def test_model_card_md_says_which_model_was_exported(members, refit, extra, says):
    md = exporting.render_card_md(_card_of(members, refit=refit, **extra))
    for phrase in says:
        assert phrase in md, (phrase, md[:800])


def test_model_card_md_of_a_card_from_before_export_modes_still_renders():
    card = _card_of([5], refit=False)
    del card["export"]
    md = exporting.render_card_md(card)
    assert md.startswith("# Model card: s trial 5") and "- Export:" not in md
