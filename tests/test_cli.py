"""The CLI in-process (CliRunner): an end-to-end tiny study, resume, export, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DEFAULT_DB, FSEARCH, create_study, invoke, n_finished, trial_states


def run_tiny(config: Path, data_dir: Path, trials: int, *more: object):
    """`fsearch run` of the tiny study in this process."""
    return invoke("run", "--config", config, "--trials", trials, "--data-dir", data_dir, *more)


@pytest.mark.slow
def test_run_resume_export_end_to_end(tiny_config, real_data_dir):
    r = run_tiny(tiny_config, real_data_dir, 3)
    assert r.exit_code == 0, r.output
    assert "study tiny (new)" in r.output and "#0 " in r.output and "exported trial" in r.output
    states = trial_states()
    assert n_finished(states) == 3 and "RUNNING" not in states

    # Again with a larger total: resumes and stops at exactly 5 finished trials.
    r = run_tiny(tiny_config, real_data_dir, 5)
    assert r.exit_code == 0, r.output
    assert "study tiny (resumed)" in r.output and "3/5 finished" in r.output
    assert n_finished(trial_states()) == 5

    # Already there: nothing runs.
    r = run_tiny(tiny_config, real_data_dir, 5, "--no-export")
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
    assert run_tiny(tiny_config, real_data_dir, 1, "--no-export").exit_code == 0
    before = trial_states()
    tiny_config.write_text(tiny_config.read_text().replace("epochs = 2", "epochs = 3"))
    r = run_tiny(tiny_config, real_data_dir, 2)
    assert r.exit_code == 2
    assert "different search space (space.epochs" in r.output and "--allow-space-change" in r.output
    assert "to continue it as it ran, set epochs = 2 in [space] of a copy of its config" in r.output
    assert trial_states() == before


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
    assert not DEFAULT_DB.exists()


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
    r = run_tiny(tiny_config, real_data_dir, 1, "--storage", url)
    assert r.exit_code == 2 and message in r.output
    assert "hunter2" not in r.output and "Traceback" not in r.output
    assert not DEFAULT_DB.exists()


def test_missing_data_with_no_network(tiny_config, tmp_path, monkeypatch):
    from search.data import fashion

    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(fashion, "MIRRORS", ("http://127.0.0.1:9/",))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    r = invoke("run", "--config", tiny_config, "--trials", 1)
    assert r.exit_code == 2 and "apt-get install dataset-fashion-mnist" in r.output
    assert not DEFAULT_DB.exists()


def test_corrupt_data_file_is_named(tiny_config, real_data_dir, tmp_path):
    import shutil

    from search.data import FILES

    d = tmp_path / "data"
    d.mkdir()
    for name in FILES:
        shutil.copy(real_data_dir / name, d / name)
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:1000])
    r = run_tiny(tiny_config, d, 1)
    assert r.exit_code == 2 and "train-images-idx3-ubyte.gz is not a readable gzip" in r.output
    assert not DEFAULT_DB.exists()


@pytest.mark.parametrize("name", ["../x", "/etc/x"])
def test_study_name_escaping_its_directory(tiny_config, name):
    r = invoke("run", "--config", tiny_config, "--study", name, "--trials", 1)
    assert r.exit_code == 2 and "is not allowed" in r.output
    r = invoke("export", "--study", name)
    assert r.exit_code == 2 and "is not allowed" in r.output


def test_export_errors(workdir, tiny_config, real_data_dir):
    r = invoke("export", "--study", "tiny")
    assert r.exit_code == 2 and "no study database" in r.output
    assert not DEFAULT_DB.exists()
    # A study with no completed trial.
    create_study(tiny_config)
    r = invoke("export", "--study", "tiny", "--data-dir", real_data_dir)
    assert r.exit_code == 2 and "has no completed trial yet" in r.output
    r = invoke("export", "--study", "nope")
    assert r.exit_code == 2 and "no study named 'nope'" in r.output and "tiny" in r.output


@pytest.mark.slow
def test_export_to_a_file_is_refused(tiny_config, real_data_dir):
    assert run_tiny(tiny_config, real_data_dir, 1, "--no-export").exit_code == 0
    Path("afile").write_text("x")
    r = invoke("export", "--study", "tiny", "--out", "afile", "--data-dir", real_data_dir)
    assert r.exit_code == 2 and "is a file; give a directory" in r.output


def test_typo_in_flag_suggests_the_right_one(workdir):
    r = invoke("run", "--trails", "3")
    assert r.exit_code == 2 and "--trials" in r.output


def test_help_is_fast_and_does_not_import_tensorflow():
    code = "import sys; from search.cli import app; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    proc = subprocess.run([FSEARCH, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "run" in proc.stdout and "export" in proc.stdout


@pytest.mark.slow
def test_a_failed_export_leaves_the_previous_one_whole(tiny_config, real_data_dir, monkeypatch):
    assert run_tiny(tiny_config, real_data_dir, 2).exit_code == 0
    best = Path("studies/tiny/best")
    before = {p.name: p.read_bytes() for p in best.iterdir()}
    assert set(before) == {"model.keras", "model-card.json", "model-card.md"}

    from search import exporting

    def broken(*args, **kwargs):
        raise RuntimeError("the test set could not be read")

    monkeypatch.setattr(exporting, "evaluate", broken)
    r = invoke("export", "--study", "tiny", "--data-dir", real_data_dir)
    assert isinstance(r.exception, RuntimeError)
    assert {p.name: p.read_bytes() for p in best.iterdir()} == before  # no scratch left either


@pytest.mark.slow
def test_export_refuses_a_kept_model_changed_in_the_artifact_store(tiny_config, real_data_dir):
    assert run_tiny(tiny_config, real_data_dir, 2).exit_code == 0
    card = json.loads(Path("studies/tiny/best/model-card.json").read_text())
    (kept,) = [p for p in Path("studies/artifacts").iterdir() if p.stat().st_size > 0][:1]
    for model in Path("studies/artifacts").iterdir():
        model.write_bytes(model.read_bytes() + b"tampered")
    # --no-refit: the kept model itself is exported (a refit does not read it).
    r = invoke(
        "export", "--study", "tiny", "--data-dir", real_data_dir, "--out", "again", "--no-refit"
    )
    assert r.exit_code == 2 and "is not the file that was kept" in r.output, r.output
    assert r.output.strip().count("\n") == 0 and not Path("again/model.keras").exists()
    assert card["model_sha256"] and kept.exists()


def test_cmaes_on_a_shared_database_needs_trust_storage(workdir):
    url = "postgresql+psycopg://u@127.0.0.1:9/x"
    r = invoke("run", "--sampler", "cmaes", "--storage", url, "--trials", 1)
    assert r.exit_code == 2 and "loads its state with pickle" in r.output
    assert "--trust-storage" in r.output
    r = invoke("run", "--sampler", "cmaes", "--storage", url, "--trials", 1, "--trust-storage")
    assert r.exit_code == 2 and "cannot reach storage" in r.output  # got past the check
