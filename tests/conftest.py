"""Shared fixtures: a tiny study config, an isolated working directory, the real data files,
the real tiny grid study, PostgreSQL databases; the `needs` marker. Plain helpers are in
tests/helpers.py.

Under CI (env CI set, as .ci/run does) nothing a test needs may be missing: the data files,
the PostgreSQL server and the optional packages of the `needs` marker fail the test there
instead of skipping it, so a green CI run has run every test."""

from __future__ import annotations

import importlib.util
import os
import re
import uuid
from pathlib import Path

import pytest

from tests.helpers import PG_SERVER_DEFAULT, TINY_TOML, data_dir, pg_connect
from tests.tiny_study import TinyStudy, build_tiny_study

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `fsearch run --jobs` reads FSEARCH_JOBS: the tests' runs stay in one process, whatever the
# developer's shell says, unless a test asks for workers (tests/test_devices.py checks the env).
os.environ["FSEARCH_JOBS"] = "1"


def in_ci() -> bool:
    """CI is set (to anything but an empty string, 0 or false): missing things fail tests."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(msg: str) -> None:
    """Skip the test, or under CI fail it: CI must run every test."""
    if in_ci():
        pytest.fail(msg + " (CI must run this test)", pytrace=False)
    pytest.skip(msg)


# ---------------------------------------------------------------------------- optional packages


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*modules, install=HINT): the test imports these optional packages (JAX, "
        "Jupyter, moto); one missing skips it, or fails it under CI",
    )


# A test that still skips itself with pytest.importorskip on one of these fails under CI too.
OPTIONAL_PACKAGES = ("jax", "nbformat", "nbclient", "ipykernel", "ipywidgets", "moto", "boto3")
_OPTIONAL_SKIP = re.compile(rf"could not import '({'|'.join(OPTIONAL_PACKAGES)})[.']")


def _fail_optional_skip(report) -> None:
    """Under CI, turn a skip for a missing optional package into a failure."""
    if not (in_ci() and report.skipped and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    if _OPTIONAL_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"{reason} (CI must run this test)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_optional_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_optional_skip(outcome.get_result())


def pytest_runtest_setup(item) -> None:
    for mark in item.iter_markers("needs"):
        missing = []
        for module in mark.args:
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:  # a parent package is missing
                found = False
            if not found:
                missing.append(module)
        if missing:
            hint = mark.kwargs.get("install", "pip install -e '.[dev]'")
            skip_or_fail(f"{', '.join(missing)} not installed: {hint}")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    d = data_dir()
    if not (d / "train-images-idx3-ubyte.gz").is_file():
        skip_or_fail(f"Fashion-MNIST not found in {d}: apt-get install dataset-fashion-mnist")
    return d


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, real_data_dir) -> TinyStudy:
    """The real tiny grid study (tests/tiny_study.py), trained once per session. Read it only;
    a test that changes it works on `tiny_study.copy_to(tmp_path)`."""
    return build_tiny_study(tmp_path_factory.mktemp("tiny-grid-study"), real_data_dir)


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


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh, empty database on the PostgreSQL server for this test session, dropped after.

    The server is $FSEARCH_TEST_PG (any database on it; we connect there to create ours),
    else 127.0.0.1:5432 as user postgres. Unreachable: a failure in CI, a skip elsewhere.
    """
    server = os.environ.get("FSEARCH_TEST_PG", PG_SERVER_DEFAULT)
    try:
        admin = pg_connect(server, autocommit=True)
    except Exception as e:
        from search.storage import mask

        msg = f"PostgreSQL not reachable at {mask(server)} ({str(e).strip().splitlines()[0]})"
        if not in_ci():
            msg += "; set FSEARCH_TEST_PG to a server URL to run these tests"
        skip_or_fail(msg)
    name = f"fsearch_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        # A new connection: a test may have restarted the server since (test_workers).
        with pg_connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_pg_url(pg_url) -> str:
    """Another empty database for one test (one without Optuna's tables), dropped after."""
    name = f"{pg_url.rsplit('/', 1)[1]}_{uuid.uuid4().hex[:6]}"
    with pg_connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{pg_url.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
