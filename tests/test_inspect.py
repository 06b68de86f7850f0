"""fsearch studies / trials / best / delete on a real tiny study, in every output format."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3

import pytest

from tests.helpers import invoke, trial_states
from tests.tiny_study import N_TRIALS


def n_diverged(db) -> int:
    """Diverged trials straight from the database, to check the commands against."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM trial_user_attributes "
            "WHERE key = 'end_reason' AND value_json = '\"diverged\"'"
        ).fetchone()[0]


@pytest.mark.slow
def test_studies_in_every_format(tiny_study):
    r = invoke("studies", "--storage", tiny_study.storage, "--format", "json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    states = trial_states(tiny_study.db)
    assert row["study"] == "tiny-grid" and row["trials"] == N_TRIALS
    assert row["complete"] == states.get("COMPLETE", 0)
    assert row["diverged"] == n_diverged(tiny_study.db) >= 1
    assert row["complete"] + row["pruned"] + row["diverged"] == N_TRIALS
    assert row["state"] == "idle" and 0 < row["best_value"] <= 1

    r = invoke("studies", "--storage", tiny_study.storage, "--format", "csv")
    assert r.exit_code == 0
    (csv_row,) = list(csv.DictReader(io.StringIO(r.output)))
    assert csv_row["study"] == "tiny-grid" and int(csv_row["trials"]) == N_TRIALS
    assert float(csv_row["best_value"]) == pytest.approx(row["best_value"])

    r = invoke("studies", "--storage", tiny_study.storage)
    assert r.exit_code == 0 and "tiny-grid" in r.output and "best_value" in r.output


@pytest.mark.slow
def test_trials_best_first_and_top(tiny_study):
    r = invoke("trials", "--study", "tiny-grid", "--storage", tiny_study.storage, "-f", "json")
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

    r = invoke(
        "trials", "-s", "tiny-grid", "--storage", tiny_study.storage, "--top", 2, "-f", "csv"
    )
    assert r.exit_code == 0
    top = list(csv.DictReader(io.StringIO(r.output)))
    assert [int(t["trial"]) for t in top] == [row["trial"] for row in rows[:2]]
    assert float(top[0]["value"]) == pytest.approx(rows[0]["value"])

    r = invoke("trials", "-s", "tiny-grid", "--storage", tiny_study.storage, "--top", 3)
    assert r.exit_code == 0 and "3 of 4 trials" in r.output


@pytest.mark.slow
def test_best_in_every_format(tiny_study):
    r = invoke("best", "--study", "tiny-grid", "--storage", tiny_study.storage, "-f", "json")
    assert r.exit_code == 0, r.output
    best = json.loads(r.output)
    trials = json.loads(
        invoke("trials", "-s", "tiny-grid", "--storage", tiny_study.storage, "-f", "json").output
    )
    assert best["trial"] == trials[0]["trial"]
    assert best["value"] == pytest.approx(trials[0]["value"], abs=1e-6)
    assert best["hyperparams"]["learning_rate"] == 0.05
    assert len(best["learning_curve"]) == best["epochs_run"] == 2
    assert best["kept_model"]  # the best model was kept as an artifact

    r = invoke("best", "--study", "tiny-grid", "--storage", tiny_study.storage, "-f", "csv")
    kv = {row["key"]: row["value"] for row in csv.DictReader(io.StringIO(r.output))}
    assert int(kv["trial"]) == best["trial"] and kv["hyperparams.optimizer"] == "sgd"

    r = invoke("best", "--study", "tiny-grid", "--storage", tiny_study.storage)
    assert r.exit_code == 0 and "architecture" in r.output


@pytest.mark.slow
def test_delete_asks_then_removes_study_and_models(tiny_study, tmp_path):
    mine = tiny_study.copy_to(tmp_path / "copy")
    models = list(mine.artifacts.rglob("*"))
    assert [m for m in models if m.is_file()]  # kept models exist before

    r = invoke(
        "delete", "--study", "tiny-grid", "--storage", mine.storage,
        "--artifacts", mine.artifacts, input="n\n",
    )  # fmt: skip
    assert r.exit_code == 1 and "not deleted" in r.output, r.output
    assert sum(trial_states(mine.db).values()) == N_TRIALS

    r = invoke(
        "delete", "-s", "tiny-grid", "--storage", mine.storage, "--artifacts", mine.artifacts, "-y"
    )
    assert r.exit_code == 0, r.output
    assert "deleted study tiny-grid (4 trials" in r.output
    assert [f for f in mine.artifacts.rglob("*") if f.is_file()] == []
    assert trial_states(mine.db) == {}
    r = invoke("studies", "--storage", mine.storage, "-f", "json")
    assert json.loads(r.output) == []


@pytest.mark.slow
def test_unknown_study_lists_the_known_ones(tiny_study):
    for cmd in ("trials", "best", "delete"):
        extra = ["--yes"] if cmd == "delete" else []
        r = invoke(cmd, "--study", "nope", "--storage", tiny_study.storage, *extra)
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
    r = invoke(cmd, "--help", terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "Usage: fsearch" in r.output or "Usage: root" in r.output
    if cmd in ("run", "report"):
        assert "[default: " in r.output


def test_a_study_name_holding_rich_markup_is_printed_as_it_is(workdir):
    import optuna

    from search import storage as st

    optuna.create_study(study_name="a[/b] [bold]x", storage=st.open_storage(None))
    r = invoke("studies")
    assert r.exit_code == 0, r.output
    assert "a[/b] [bold]x" in r.output


@pytest.mark.slow
def test_delete_refuses_a_planted_artifact_id_and_removes_nothing(tiny_study, tmp_path):
    from search import storage as st

    mine = tiny_study.copy_to(tmp_path / "copy")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    storage = st.open_storage(mine.storage)
    storage.set_study_system_attr(  # what anyone who can write the shared database can do
        storage.get_study_id_from_name("tiny-grid"),
        "artifacts:planted",
        json.dumps({"artifact_id": str(victim), "filename": "x", "mimetype": "", "encoding": ""}),
    )
    r = invoke(
        "delete", "-s", "tiny-grid", "--storage", mine.storage, "--artifacts", mine.artifacts, "-y"
    )
    assert r.exit_code == 2 and "fsearch never writes" in r.output, r.output
    assert victim.read_text() == "keep me" and sum(trial_states(mine.db).values()) == N_TRIALS
