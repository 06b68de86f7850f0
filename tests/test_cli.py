"""The CLI in-process (CliRunner): an end-to-end tiny study, resume, export, and bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def db_counts(path: Path = Path("studies/fsearch.db")) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())


def table_rows(path: Path = Path("studies/fsearch.db")) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM studies").fetchone()[0]


@pytest.mark.slow
def test_run_resume_export_end_to_end(tiny_config, real_data_dir):
    r = invoke("run", "--config", tiny_config, "--trials", 3, "--data-dir", real_data_dir)
    assert r.exit_code == 0, r.output
    assert "study tiny (new)" in r.output and "#0 " in r.output and "exported trial" in r.output
    counts = db_counts()
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 3 and "RUNNING" not in counts

    # Again with a larger total: resumes and stops at exactly 5 finished trials.
    r = invoke("run", "--config", tiny_config, "--trials", 5, "--data-dir", real_data_dir)
    assert r.exit_code == 0, r.output
    assert "study tiny (resumed)" in r.output and "3/5 finished" in r.output
    counts = db_counts()
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 5

    # Already there: nothing runs.
    r = invoke(
        "run", "--config", tiny_config, "--trials", 5, "--data-dir", real_data_dir, "--no-export"
    )
    assert r.exit_code == 0 and "5/5 finished" in r.output and "#5" not in r.output

    out = Path("exported")
    r = invoke("export", "--study", "tiny", "--out", out, "--data-dir", real_data_dir)
    assert r.exit_code == 0, r.output
    card = json.loads((out / "model-card.json").read_text())
    for key in (
        "trial",
        "params",
        "validation_accuracy",
        "test_accuracy",
        "test_loss",
        "per_class_accuracy",
        "confusion_matrix",
        "parameter_count",
        "seed",
        "versions",
    ):
        assert key in card
    assert card["test_examples"] == 1000
    assert sum(map(sum, card["confusion_matrix"])) == 1000
    assert set(card["data"]["files_sha256"]) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert (out / "model-card.md").read_text().startswith("# Model card: tiny trial")

    # The model loads with plain Keras in a fresh process, no custom objects, and predicts.
    code = (
        "import numpy as np, keras, sys, json;"
        "m = keras.saving.load_model(sys.argv[1]);"
        "p = m.predict(np.zeros((2, 784), 'float32'), verbose=0);"
        "print(json.dumps(p.shape))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out / "model.keras")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [2, 10]


@pytest.mark.slow
def test_changed_space_is_refused_without_writing(tiny_config, real_data_dir):
    assert (
        invoke(
            "run",
            "--config",
            tiny_config,
            "--trials",
            1,
            "--data-dir",
            real_data_dir,
            "--no-export",
        ).exit_code
        == 0
    )
    before = db_counts()
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 3"))
    r = invoke("run", "--config", tiny_config, "--trials", 2, "--data-dir", real_data_dir)
    assert r.exit_code == 2
    assert "different search space (space.epochs" in r.output and "--allow-space-change" in r.output
    assert db_counts() == before


@pytest.mark.parametrize(
    ("toml_change", "message"),
    [
        (
            ("layers = { low = 1, high = 2 }", "layrs = 2"),
            "unknown key 'layrs'; did you mean 'layers'",
        ),
        (("epochs = 2", 'epochs = "two"'), "expected int, got str"),
        (("low = 1e-3, high = 0.05", "low = 0.5, high = 0.05"), "low (0.5) must be <= high (0.05)"),
        (("low = 1e-3, high = 0.05, log", "low = 0.0, high = 0.05, log"), "must be > 0"),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(tiny_config, toml_change, message):
    old, new = toml_change
    tiny_config.write_text(tiny_config.read_text().replace(old, new))
    r = invoke("run", "--config", tiny_config, "--trials", 2)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0
    assert not Path("studies/fsearch.db").exists()


@pytest.mark.parametrize("trials", ["0", "-3"])
def test_non_positive_trials(workdir, trials):
    r = invoke("run", "--trials", trials)
    assert r.exit_code == 2 and "--trials must be at least 1" in r.output
    assert not Path("studies").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite//oops", "is malformed"),
        ("mysqll://u@h/db", "unknown database dialect 'mysqll'"),
        ("postgresql+psycopg://u:hunter2@127.0.0.1:9/db", "cannot reach storage"),
    ],
)
def test_bad_storage_urls(tiny_config, real_data_dir, url, message):
    r = invoke(
        "run", "--config", tiny_config, "--trials", 1, "--storage", url, "--data-dir", real_data_dir
    )
    assert r.exit_code == 2 and message in r.output
    assert "hunter2" not in r.output and "Traceback" not in r.output
    assert not Path("studies/fsearch.db").exists()


def test_missing_data_with_no_network(tiny_config, tmp_path, monkeypatch):
    from search import data

    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/",))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    r = invoke("run", "--config", tiny_config, "--trials", 1)
    assert r.exit_code == 2 and "apt-get install dataset-fashion-mnist" in r.output
    assert not Path("studies/fsearch.db").exists()


def test_corrupt_data_file_is_named(tiny_config, real_data_dir, tmp_path):
    import shutil

    from search.data import FILES

    d = tmp_path / "data"
    d.mkdir()
    for name in FILES:
        shutil.copy(real_data_dir / name, d / name)
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:1000])
    r = invoke("run", "--config", tiny_config, "--trials", 1, "--data-dir", d)
    assert r.exit_code == 2 and "train-images-idx3-ubyte.gz is not a readable gzip" in r.output
    assert not Path("studies/fsearch.db").exists()


@pytest.mark.parametrize("name", ["../x", "/etc/x"])
def test_study_name_escaping_its_directory(tiny_config, name):
    r = invoke("run", "--config", tiny_config, "--study", name, "--trials", 1)
    assert r.exit_code == 2 and "is not allowed" in r.output
    r = invoke("export", "--study", name)
    assert r.exit_code == 2 and "is not allowed" in r.output


def test_export_errors(workdir, tiny_config, real_data_dir):
    r = invoke("export", "--study", "tiny")
    assert r.exit_code == 2 and "no study database" in r.output
    assert not Path("studies/fsearch.db").exists()
    # A study with no completed trial.
    from search import storage as st
    from search.config import load_config

    st.create_or_load_study(st.open_storage(None), load_config(tiny_config))
    r = invoke("export", "--study", "tiny", "--data-dir", real_data_dir)
    assert r.exit_code == 2 and "has no completed trial yet" in r.output
    r = invoke("export", "--study", "nope")
    assert r.exit_code == 2 and "no study named 'nope'" in r.output and "tiny" in r.output


@pytest.mark.slow
def test_export_to_a_file_is_refused(tiny_config, real_data_dir):
    assert (
        invoke(
            "run",
            "--config",
            tiny_config,
            "--trials",
            1,
            "--data-dir",
            real_data_dir,
            "--no-export",
        ).exit_code
        == 0
    )
    Path("afile").write_text("x")
    r = invoke("export", "--study", "tiny", "--out", "afile", "--data-dir", real_data_dir)
    assert r.exit_code == 2 and "is a file; give a directory" in r.output


def test_typo_in_flag_suggests_the_right_one(workdir):
    r = invoke("run", "--trails", "3")
    assert r.exit_code == 2 and "--trials" in r.output


def test_help_is_fast_and_does_not_import_tensorflow():
    code = "import sys; from search.cli import app; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    exe = Path(sys.executable).parent / "fsearch"  # the console script of this environment
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "run" in proc.stdout and "export" in proc.stdout
