"""Export modes (issue #14): refit on train + validation, top-k ensembles, a size budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from search import datasets, exporting
from search.config import load_config
from tests.helpers import TINY_TOML, invoke


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


def _tiny_test_set(real_data_dir):
    from tests.tiny_study import TINY_GRID_TOML

    cfg = load_config("tiny-grid.toml", text=TINY_GRID_TOML)
    return datasets.load_test(cfg.data, real_data_dir)


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
def test_refit_trains_on_train_and_validation_and_reloads_with_plain_keras(
    tiny_study, tmp_path, real_data_dir
):
    args = _copy(tiny_study, tmp_path)
    card, output = _export(args, real_data_dir, tmp_path / "refit", "--refit", "--ensemble", "1")
    (refit,) = card["export"]["refit"]
    assert card["export"]["mode"] == "refit" and "(at selection)" in output
    assert refit["rows"] == 2000 + 500 and refit["epochs"] == card["best_epoch"]
    assert card["validation_value"] == card["export"]["member_validation_values"][0]
    with zipfile.ZipFile(tmp_path / "refit" / "model.keras") as z:  # no optimizer state
        assert not json.loads(z.read("config.json")).get("compile_config")
    x, y = _tiny_test_set(real_data_dir)
    got = _fresh_accuracy(tmp_path / "refit" / "model.keras", x, y, tmp_path)
    assert got == pytest.approx(card["test_accuracy"], abs=1e-9)
    # Seeded: the same refit gives the same model.
    again, _ = _export(args, real_data_dir, tmp_path / "refit2", "--refit", "--ensemble", "1")
    assert again["test_accuracy"] == card["test_accuracy"]


def test_ensemble_larger_than_the_kept_models_says_what_to_do(tiny_study, tmp_path):
    args = _copy(tiny_study, tmp_path)
    r = invoke("export", *args, "--no-refit", "--ensemble", "3")
    assert r.exit_code == 2 and "--ensemble 3 needs 3 kept models" in r.output
    assert "--refit" in r.output and r.output.strip().count("\n") == 0


def test_max_params_below_every_trial_is_one_line(tiny_study, tmp_path):
    r = invoke("export", *_copy(tiny_study, tmp_path), "--no-refit", "--max-params", "100")
    assert r.exit_code == 2 and "at most 100 parameters" in r.output


@pytest.mark.slow
def test_a_constrained_study_completes_only_trials_within_max_params(workdir, real_data_dir):
    budget = 20_000  # the tiny space spans about 12,900 to 40,900 parameters
    cfg = workdir / "budget.toml"
    cfg.write_text(
        TINY_TOML.replace('name = "tiny"', f'name = "budget"\nmax_params = {budget}').replace(
            "startup_trials = 2", 'startup_trials = 3\npruner = "none"'
        )
        + 'lr_schedule = "cosine"\n'
    )
    r = invoke("run", "--config", cfg, "--trials", "8", "--data-dir", real_data_dir)
    assert r.exit_code == 0, r.output
    from search.api import load_study

    trials = load_study("budget").trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    over = [t for t in trials if t.user_attrs.get("end_reason") == "over budget"]
    assert done and all(t.user_attrs["n_params"] <= budget for t in done)
    assert all(t.user_attrs["n_params"] > budget and t.state.name == "PRUNED" for t in over)
    card = json.loads(Path("studies/budget/best/model-card.json").read_text())
    assert card["parameter_count"] <= budget
    assert card["export"]["max_params"] == budget
    # Members of an ensemble are rebuilt with their cosine schedule (needs the step count).
    card, _ = _export(
        ["--study", "budget"], real_data_dir, workdir / "ens", "--no-refit", "--ensemble", "2"
    )
    assert card["export"]["mode"] == "ensemble" and card["parameter_count"] <= 2 * budget


@pytest.mark.slow
def test_default_export_is_the_three_best_refit_and_averaged(tiny_study, tmp_path, real_data_dir):
    from search.api import load_study
    from search.metrics import of_study

    args = _copy(tiny_study, tmp_path)
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
    ],
    ids=["selected", "refit", "ensemble", "refit-ensemble-budget"],
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
