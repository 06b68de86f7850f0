"""fsearch studies / trials / best / delete on a real tiny study, in every output format."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest
from tiny_study import N_TRIALS, build_tiny_study
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()


def invoke(*args, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, real_data_dir):
    return build_tiny_study(tmp_path_factory, real_data_dir)


def db_states(db) -> dict[str, int]:
    """Trial states straight from the database, to check the commands against."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())


def n_diverged(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM trial_user_attributes "
            "WHERE key = 'end_reason' AND value_json = '\"diverged\"'"
        ).fetchone()[0]


@pytest.mark.slow
def test_studies_in_every_format(tiny):
    r = invoke("studies", "--storage", tiny.storage, "--format", "json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    states = db_states(tiny.db)
    assert row["study"] == "tiny-grid" and row["trials"] == N_TRIALS
    assert row["complete"] == states.get("COMPLETE", 0)
    assert row["diverged"] == n_diverged(tiny.db) >= 1
    assert row["complete"] + row["pruned"] + row["diverged"] == N_TRIALS
    assert row["state"] == "idle" and 0 < row["best_value"] <= 1

    r = invoke("studies", "--storage", tiny.storage, "--format", "csv")
    assert r.exit_code == 0
    (csv_row,) = list(csv.DictReader(io.StringIO(r.output)))
    assert csv_row["study"] == "tiny-grid" and int(csv_row["trials"]) == N_TRIALS
    assert float(csv_row["best_value"]) == pytest.approx(row["best_value"])

    r = invoke("studies", "--storage", tiny.storage)
    assert r.exit_code == 0 and "tiny-grid" in r.output and "best_value" in r.output


@pytest.mark.slow
def test_trials_best_first_and_top(tiny):
    r = invoke("trials", "--study", "tiny-grid", "--storage", tiny.storage, "-f", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert sorted(row["trial"] for row in rows) == list(range(N_TRIALS))
    complete = [row for row in rows if row["state"] == "complete"]
    assert rows[: len(complete)] == complete  # complete trials first ...
    values = [row["value"] for row in complete]
    assert values == sorted(values, reverse=True)  # ... best first
    diverged = [row for row in rows if row["state"] == "diverged"]
    assert diverged and all(row["value"] is None for row in diverged)
    assert all(row["learning_rate"] in (0.05, 1e6) and row["batch_size"] == 64 for row in rows)

    r = invoke("trials", "-s", "tiny-grid", "--storage", tiny.storage, "--top", 2, "-f", "csv")
    assert r.exit_code == 0
    top = list(csv.DictReader(io.StringIO(r.output)))
    assert [int(t["trial"]) for t in top] == [row["trial"] for row in rows[:2]]
    assert float(top[0]["value"]) == pytest.approx(rows[0]["value"])

    r = invoke("trials", "-s", "tiny-grid", "--storage", tiny.storage, "--top", 3)
    assert r.exit_code == 0 and "3 of 4 trials" in r.output


@pytest.mark.slow
def test_best_in_every_format(tiny):
    r = invoke("best", "--study", "tiny-grid", "--storage", tiny.storage, "-f", "json")
    assert r.exit_code == 0, r.output
    best = json.loads(r.output)
    trials = json.loads(
        invoke("trials", "-s", "tiny-grid", "--storage", tiny.storage, "-f", "json").output
    )
    assert best["trial"] == trials[0]["trial"]
    assert best["value"] == pytest.approx(trials[0]["value"], abs=1e-6)
    assert best["hyperparams"]["learning_rate"] == 0.05
    assert len(best["learning_curve"]) == best["epochs_run"] == 2
    assert best["kept_model"]  # the best model was kept as an artifact

    r = invoke("best", "--study", "tiny-grid", "--storage", tiny.storage, "-f", "csv")
    kv = {row["key"]: row["value"] for row in csv.DictReader(io.StringIO(r.output))}
    assert int(kv["trial"]) == best["trial"] and kv["hyperparams.optimizer"] == "sgd"

    r = invoke("best", "--study", "tiny-grid", "--storage", tiny.storage)
    assert r.exit_code == 0 and "architecture" in r.output


@pytest.mark.slow
def test_delete_asks_then_removes_study_and_models(tiny, tmp_path):
    mine = tiny.copy_to(tmp_path / "copy")
    models = list(mine.artifacts.rglob("*"))
    assert [m for m in models if m.is_file()]  # kept models exist before

    r = invoke(
        "delete", "--study", "tiny-grid", "--storage", mine.storage,
        "--artifacts", mine.artifacts, input="n\n",
    )  # fmt: skip
    assert r.exit_code == 1 and "not deleted" in r.output, r.output
    assert sum(db_states(mine.db).values()) == N_TRIALS

    r = invoke(
        "delete", "-s", "tiny-grid", "--storage", mine.storage, "--artifacts", mine.artifacts, "-y"
    )
    assert r.exit_code == 0, r.output
    assert "deleted study tiny-grid (4 trials" in r.output
    assert [f for f in mine.artifacts.rglob("*") if f.is_file()] == []
    assert db_states(mine.db) == {}
    r = invoke("studies", "--storage", mine.storage, "-f", "json")
    assert json.loads(r.output) == []


@pytest.mark.slow
def test_unknown_study_lists_the_known_ones(tiny):
    for cmd in ("trials", "best", "delete"):
        extra = ["--yes"] if cmd == "delete" else []
        r = invoke(cmd, "--study", "nope", "--storage", tiny.storage, *extra)
        assert r.exit_code == 2, (cmd, r.output)
        assert "no study named 'nope'" in r.output and "tiny-grid" in r.output
        assert r.output.strip().count("\n") == 0


@pytest.mark.parametrize("cmd", ["studies", "trials", "best"])
def test_no_database_is_one_line(workdir, cmd):
    r = invoke(cmd)
    assert r.exit_code == 2 and "no study database" in r.output
    assert r.output.strip().count("\n") == 0
    assert not (workdir / "studies").exists()  # nothing created


def test_bad_format_is_refused(workdir):
    r = invoke("studies", "--format", "xml")
    assert r.exit_code == 2 and "xml" in r.output


@pytest.mark.parametrize(
    "cmd", ["run", "export", "dashboard", "studies", "trials", "best", "delete", "report"]
)
def test_every_help_renders(cmd):
    # Help texts hold "[default: ...]" and "s3://BUCKET[/PREFIX]": shown as written.
    r = runner.invoke(app, [cmd, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "Usage: fsearch" in r.output or "Usage: root" in r.output
    if cmd in ("run", "report"):
        assert "[default: " in r.output
