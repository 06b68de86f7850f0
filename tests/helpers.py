"""Helpers shared by the test modules: one of each kind, imported as `tests.helpers`.

Fixtures live in conftest.py; everything here is a plain function or constant.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from click.testing import Result

ROOT = Path(__file__).resolve().parent.parent  # the repository
FSEARCH = Path(sys.executable).parent / "fsearch"  # the console script of this environment
DEFAULT_DB = Path("studies/fsearch.db")  # the default storage, relative to the working dir

TINY_TOML = """
[study]
name = "tiny"
seed = 1
startup_trials = 2
keep_models = 2

[data]
validation_size = 500
train_size = 2000
test_size = 1000

[train]
steps_per_execution = 8
validation_batch_size = 500

[space]
layers = { low = 1, high = 2 }
width = { low = 16, high = 48, log = true }
activation = "relu"
optimizer = ["sgd", "adam"]
learning_rate = { low = 1e-3, high = 0.05, log = true }
momentum = { low = 0.0, high = 0.9 }
regularizer = ["none", "l2"]
reg_strength = { low = 1e-5, high = 1e-3, log = true }
dropout = { low = 0.0, high = 0.3 }
batch_size = [64, 128]
epochs = 2
"""

# The seed lab's fixed hyperparameters (SGD at 0.1, no momentum, regularization or dropout,
# batch 32); each lab table varies one of them.
LAB_BASELINE: dict[str, Any] = {
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "momentum": 0.0,
    "regularizer": "none",
    "reg_strength": 0.0,
    "dropout": 0.0,
    "batch_size": 32,
}


def raw_config(**space_overrides: Any) -> dict[str, Any]:
    """The tiny study's config as parsed TOML (a fresh dict), with [space] keys replaced."""
    import tomllib  # Python 3.11+, as search.config

    raw = tomllib.loads(TINY_TOML)
    raw["space"].update(space_overrides)
    return raw


def data_dir() -> Path:
    """The real Fashion-MNIST files (CI installs the Debian package)."""
    return Path(os.environ.get("FSEARCH_DATA_DIR", "/usr/share/datasets/fashion-mnist"))


# ---------------------------------------------------------------------------- the CLI


def invoke(*args: object, input: str | None = None, terminal_width: int | None = None) -> Result:
    """`fsearch ARGS...` in this process (typer's CliRunner); arguments may be paths or ints."""
    from typer.testing import CliRunner

    from search.cli import app

    return CliRunner().invoke(
        app, [str(a) for a in args], input=input, terminal_width=terminal_width
    )


def fsearch_run_cmd(config: Path, data_dir: Path, *args: object) -> list[str]:
    """`fsearch run --no-export` of a study config, as a real process would be started."""
    return [
        str(FSEARCH),
        "run",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--no-export",
        *map(str, args),
    ]


# ---------------------------------------------------------------------------- trial states


def trial_states(db: Path = DEFAULT_DB) -> dict[str, int]:
    """Trials per Optuna state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING) read straight
    from an SQLite study database; {} while the file or its tables do not exist yet."""
    if not Path(db).is_file():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM trials GROUP BY state"))
    except sqlite3.OperationalError:  # no such table: the schema is not created yet
        return {}


def study_states(study: optuna.Study) -> dict[str, int]:
    """Trials per Optuna state name, through Optuna (any storage); absent states left out."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def n_finished(states: dict[str, int]) -> int:
    """Finished trials (COMPLETE + PRUNED, diverged included) in a trial_states /
    study_states dict: what --trials counts."""
    return states.get("COMPLETE", 0) + states.get("PRUNED", 0)


def create_study(config: Path, storage: str | None = None) -> optuna.Study:
    """The config's study, created with no trials (default storage unless one is given)."""
    from search import storage as st
    from search import studies
    from search.config import load_config

    return studies.create_or_load_study(st.open_storage(storage), load_config(config))[0]


# ---------------------------------------------------------------------------- PostgreSQL

PG_SERVER_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pg_connect(url: str, **kwargs: Any):
    """A psycopg connection for a SQLAlchemy-style URL (the driver suffix removed)."""
    import psycopg

    return psycopg.connect(url.replace("+psycopg", ""), connect_timeout=5, **kwargs)


def pg_terminate(url: str) -> int:
    """Terminate every other connection to the URL's database (what a server restart does
    to clients, without restarting a server other tests share). Returns how many."""
    with pg_connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def race_for_the_budget(url: str, name: str, *, workers: int, budget: int) -> list[int]:
    """`workers` threads, each with its own storage on `url`, ask the study for trials under a
    budget of `budget` until it refuses; the trial numbers they got, sorted."""
    import threading

    import optuna

    from search import storage as st

    created: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        study = optuna.load_study(study_name=name, storage=st.open_storage(url))
        st.limit_trials(study, budget)
        while True:
            try:
                trial = study.ask()
            except st.TrialBudgetReached:
                return
            with lock:
                created.append(trial.number)
            study.tell(trial, 0.0)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return sorted(created)
