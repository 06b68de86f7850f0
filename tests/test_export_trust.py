"""Export trusts nothing it did not check: the study's rows, stored values, the folder it
replaces (issue #21: the protocol, forged stored values, reliability)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from search import exporting
from tests import datafiles
from tests.helpers import invoke


def _args(study) -> list:
    return ["--study", study.name, "--storage", study.storage, "--artifacts", study.artifacts]


def _best_trial_id(study) -> int:
    with contextlib.closing(sqlite3.connect(study.db)) as conn:
        (trial_id,) = conn.execute(
            "SELECT t.trial_id FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE t.state = 'COMPLETE' ORDER BY v.value DESC LIMIT 1"
        ).fetchone()
    return trial_id


def _sql(study, statement: str, *params) -> None:
    with contextlib.closing(sqlite3.connect(study.db)) as conn, conn:
        assert conn.execute(statement, params).rowcount == 1


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_refit_refuses_a_forged_best_epoch_in_one_line_and_writes_nothing(
    tiny_study, tmp_path, real_data_dir
):
    s = tiny_study.copy_to(tmp_path / "study")
    _sql(
        s,
        "UPDATE trial_user_attributes SET value_json = '1000000000' "
        "WHERE key = 'best_epoch' AND trial_id = ?",
        _best_trial_id(s),
    )
    out = tmp_path / "out"
    r = invoke("export", *_args(s), "--data-dir", real_data_dir, "--out", out, "--ensemble", "1")
    assert r.exit_code == 2, r.output
    assert "best_epoch 1000000000 is not between 1 and its 2 epochs" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow
def test_refit_refuses_parameters_that_disagree_with_the_recorded_hyperparameters(
    tiny_study, tmp_path, real_data_dir
):
    s = tiny_study.copy_to(tmp_path / "study")
    trial_id = _best_trial_id(s)
    with contextlib.closing(sqlite3.connect(s.db)) as conn:
        (index,) = conn.execute(
            "SELECT param_value FROM trial_params WHERE param_name = 'layers' AND trial_id = ?",
            (trial_id,),
        ).fetchone()
    _sql(
        s,
        "UPDATE trial_params SET param_value = ? WHERE param_name = 'layers' AND trial_id = ?",
        1 - index,  # the grid's other depth: 1 <-> 2 layers
        trial_id,
    )
    out = tmp_path / "out"
    r = invoke("export", *_args(s), "--data-dir", real_data_dir, "--out", out, "--ensemble", "1")
    assert r.exit_code == 2 and "do not match its parameters" in r.output, r.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"width": 10**6}, "width=1000000 is not in the study's search space"),
        ({"learning_rate": -1.0}, "learning_rate=-1.0 is not in the study's search space"),
        ({"layers": None}, "layers=None is not in the study's search space"),
    ],
)
def test_stored_hyperparams_refuse_a_parameter_outside_the_space(params, message):
    from types import SimpleNamespace

    from search.config import load_config
    from search.errors import StudyError
    from search.space import stored_hyperparams
    from tests.helpers import TINY_TOML

    cfg = load_config(
        "tiny.toml",
        text=TINY_TOML.replace("[train]", "[model]\nwidth_per_layer = false\n\n[train]"),
    )
    good = {"layers": 1, "width": 32, "optimizer": "adam", "learning_rate": 0.01,
            "regularizer": "none", "dropout": 0.1, "batch_size": 64}  # fmt: skip
    trial = SimpleNamespace(number=7, params={**good}, user_attrs={})
    assert stored_hyperparams(trial, cfg, inputs=784, outputs=10).widths == (32,)
    trial.params.update(params)
    if params.get("layers", 1) is None:
        del trial.params["layers"]
    with pytest.raises(StudyError, match=message.replace("(", r"\(")):
        stored_hyperparams(trial, cfg, inputs=784, outputs=10)


@pytest.mark.slow
def test_export_into_a_folder_of_other_files_is_refused_and_leaves_them(
    tiny_study, tmp_path, real_data_dir
):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = invoke(
        "export", *_args(tiny_study), "--data-dir", real_data_dir, "--out", out, "--no-refit",
        "--ensemble", "1",
    )  # fmt: skip
    assert r.exit_code == 2 and "holds other files (notes.txt)" in r.output, r.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_a_failed_export_leaves_the_previous_export_whole_and_no_scratch(
    tiny_study, tmp_path, real_data_dir, monkeypatch
):
    s = tiny_study.copy_to(tmp_path / "study")
    out = tmp_path / "best"
    args = [*_args(s), "--data-dir", real_data_dir, "--out", out, "--no-refit"]
    assert invoke("export", *args, "--ensemble", "1").exit_code == 0
    before = _digest(out)
    assert set(before) == set(exporting.EXPORT_FILES)

    def broken(card):
        raise RuntimeError("disk full while writing the card")

    monkeypatch.setattr(exporting, "render_card_md", broken)
    r = invoke("export", *args, "--ensemble", "2")
    assert r.exit_code != 0
    assert _digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".best")) == [
        ".best.lock"
    ]
    monkeypatch.undo()
    assert invoke("export", *args, "--ensemble", "2").exit_code == 0
    assert json.loads((out / "model-card.json").read_text())["export"]["mode"] == "ensemble"


@pytest.mark.slow
def test_export_of_a_study_whose_file_was_reshuffled_is_refused(workdir):
    cols = datafiles.wine_columns()
    path = datafiles.write_table(cols, workdir / "wine.csv")
    r = invoke("run", "--data", path, "--target", "cultivar", "--trials", "1", "--no-export")
    assert r.exit_code == 0, r.output
    order = list(range(len(cols["cultivar"])))[::-1]
    datafiles.write_table({k: v[order] for k, v in cols.items()}, path)
    r = invoke("export", "--study", "wine-mlp", "--no-refit", "--ensemble", "1")
    assert r.exit_code == 2 and "began on other data" in r.output, r.output
    assert not (workdir / "studies" / "wine-mlp" / "best").exists()


def test_export_when_every_trial_is_over_max_latency_is_one_clear_error():
    import optuna

    from search.errors import ExportError
    from search.runner import OVER_LATENCY

    study = optuna.create_study(direction="maximize")
    for value, ms in ((0.8, 3.0), (0.9, 2.5)):
        study.add_trial(
            optuna.trial.create_trial(
                value=value, user_attrs={OVER_LATENCY: ms - 1.0, "latency_ms": ms}
            )
        )
    with pytest.raises(ExportError, match=r"slower than its max_latency_ms \(the fastest: 2.5 ms"):
        exporting.select_members(study, k=3, refit=True, up_to=True)


@pytest.mark.slow
def test_sigterm_during_an_export_removes_its_scratch_and_keeps_the_previous_export(
    tiny_study, tmp_path, real_data_dir
):
    import signal
    import subprocess

    from tests.helpers import FSEARCH

    s = tiny_study.copy_to(tmp_path / "study")
    out = tmp_path / "best"
    args = [*_args(s), "--data-dir", real_data_dir, "--out", out]
    assert invoke("export", *args, "--no-refit", "--ensemble", "1").exit_code == 0
    before = _digest(out)
    proc = subprocess.Popen(
        [str(FSEARCH), "export", *map(str, args), "--refit", "--ensemble", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for line in proc.stdout:  # the first refit has begun: the scratch folder exists
        seen.append(line)
        if line.startswith("refitting trial"):
            assert any(p.name.startswith(".best.export-") for p in tmp_path.iterdir())
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen) + rest
    assert _digest(out) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".best.")
                and p.name != ".best.lock"]  # fmt: skip


@pytest.mark.slow
def test_export_counts_a_test_class_unseen_in_training_as_errors_and_says_so(workdir):
    from sklearn.datasets import load_digits

    g = load_digits()
    x = np.round(g.images * 255.0 / 16.0).astype(np.uint8)
    y = g.target.astype(np.int64)
    train = np.flatnonzero(y[:1500] != 9)  # class 9 only in the test part
    np.savez(workdir / "d.npz", x_train=x[train], y_train=y[train], x_test=x[1500:],
             y_test=y[1500:])  # fmt: skip
    r = invoke("run", "--data", workdir / "d.npz", "--trials", "1", "--no-refit", "--ensemble", "1")
    assert r.exit_code == 0, r.output
    card = json.loads((workdir / "studies" / "d-mlp" / "best" / "model-card.json").read_text())
    unseen = int(np.sum(y[1500:] == 9))
    assert card["test_unseen_rows"] == unseen > 0 and len(card["classes"]) == 9
    assert card["test_accuracy"] <= 1 - unseen / card["test_examples"]
    assert sum(map(sum, card["confusion_matrix"])) == card["test_examples"] - unseen
    assert any("'9'" in note for note in card["data"]["test_notes"])
    md = (workdir / "studies" / "d-mlp" / "best" / "model-card.md").read_text()
    assert "- Test note:" in md


@pytest.mark.slow
def test_a_run_that_exports_loads_its_data_once(tiny_config, real_data_dir, monkeypatch):
    from search import datasets

    calls = []
    real = datasets.load_split
    monkeypatch.setattr(datasets, "load_split", lambda *a, **k: calls.append(a) or real(*a, **k))
    r = invoke("run", "--config", tiny_config, "--data-dir", real_data_dir, "--trials", "2",
               "--no-refit", "--ensemble", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "exported trial" in r.output and len(calls) == 1
