"""Shared fixtures: a tiny study config, an isolated working directory, the real data files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


def data_dir() -> Path:
    """The real Fashion-MNIST files (CI installs the Debian package)."""
    d = os.environ.get("FSEARCH_DATA_DIR", "/usr/share/datasets/fashion-mnist")
    return Path(d)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    d = data_dir()
    if not (d / "train-images-idx3-ubyte.gz").is_file():
        msg = f"Fashion-MNIST not found in {d}: apt-get install dataset-fashion-mnist"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def fsearch_run_cmd(config: Path, data_dir: Path, *args: object) -> list[str]:
    """`fsearch run --no-export` of a study config, as a real process would be started."""
    exe = Path(sys.executable).parent / "fsearch"
    return [
        str(exe),
        "run",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--no-export",
        *map(str, args),
    ]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in an empty directory so studies/ and its database are the test's own."""
    monkeypatch.chdir(tmp_path)
    for var in ("FSEARCH_STORAGE", "FSEARCH_ARTIFACTS", "FSEARCH_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def tiny_config(workdir) -> Path:
    p = workdir / "tiny.toml"
    p.write_text(TINY_TOML)
    return p


# ---------------------------------------------------------------------------- PostgreSQL

PG_SERVER_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pg_connect(url: str, **kwargs):
    """A psycopg connection for a SQLAlchemy-style URL (the driver suffix removed)."""
    import psycopg

    return psycopg.connect(url.replace("+psycopg", ""), connect_timeout=5, **kwargs)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh, empty database on the PostgreSQL server for this test session, dropped after.

    The server is $FSEARCH_TEST_PG (any database on it; we connect there to create ours),
    else 127.0.0.1:5432 as user postgres. Unreachable: a failure in CI, a skip elsewhere.
    """
    import uuid

    server = os.environ.get("FSEARCH_TEST_PG", PG_SERVER_DEFAULT)
    try:
        admin = _pg_connect(server, autocommit=True)
    except Exception as e:
        from search.storage import mask

        msg = f"PostgreSQL not reachable at {mask(server)} ({str(e).strip().splitlines()[0]})"
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must run the PostgreSQL tests")
        pytest.skip(msg + "; set FSEARCH_TEST_PG to a server URL to run these tests")
    name = f"fsearch_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = server.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_pg_url(pg_url) -> str:
    """Another empty database for one test (one without Optuna's tables), dropped after."""
    import uuid

    name = f"{pg_url.rsplit('/', 1)[1]}_{uuid.uuid4().hex[:6]}"
    with _pg_connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{pg_url.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_terminate(url: str) -> int:
    """Terminate every other connection to the URL's database (what a server restart does
    to clients, without restarting a server other tests share). Returns how many."""
    with _pg_connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)
