"""`fsearch proxy` (search/proxy.py) on the real PostgreSQL server: workers through the proxy keep
fsearch's guarantees — exactly N finished trials, a killed worker's trial failed and re-run, a
lost database connection ridden out, the kept-model list updated atomically.

Needs the PostgreSQL server (the `pg_url` fixture: a failure under CI, a skip elsewhere).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid

import optuna
import pytest

from search import proxy
from search import storage as st
from search.config import load_config
from search.errors import StorageError
from tests.helpers import (
    FSEARCH,
    invoke,
    pg_connect,
    pg_terminate,
    race_for_the_budget,
    study_states,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used"),
]


@pytest.fixture
def fast_heartbeat(monkeypatch) -> None:
    # Read by the proxy's storage (its grace period) and by the clients (their beat).
    monkeypatch.setenv("FSEARCH_HEARTBEAT_S", "1")
    monkeypatch.setenv("FSEARCH_GRACE_S", "3")


@pytest.fixture
def served(fresh_pg_url, fast_heartbeat):
    """(grpc:// URL of an fsearch proxy in this process, the database URL behind it)."""
    server, port = proxy.make_server(fresh_pg_url, host="127.0.0.1", port=0)
    try:
        yield f"grpc://127.0.0.1:{port}", fresh_pg_url
    finally:
        server.stop(grace=None)


def new_study(url: str, n: int | None = None) -> optuna.Study:
    storage = st.open_storage(url, heartbeat=True)
    study = optuna.create_study(
        study_name=f"p-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize"
    )
    if n is not None:
        assert st.limit_trials(study, n)
    return study


def assert_exactly(study: optuna.Study, n: int) -> None:
    trials = study.get_trials(deepcopy=False)
    states = study_states(study)
    assert states.get("COMPLETE", 0) + states.get("PRUNED", 0) == n, states
    assert not states.get("RUNNING") and not states.get("WAITING"), states
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), "duplicate or missing trial numbers"


def test_budget_through_the_proxy_holds_under_concurrent_workers(served):
    """Eight clients race for 20 slots through the proxy: exactly 20 trials, and asking past
    the budget raises TrialBudgetReached (as on the direct path)."""
    url, _ = served
    assert race_for_the_budget(url, new_study(url).study_name, workers=8, budget=20) == list(
        range(20)
    )


def test_kept_list_updates_through_the_proxy_never_lose_each_other(served):
    url, _ = served
    study = new_study(url)

    def add(k: int) -> None:
        s = optuna.load_study(study_name=study.study_name, storage=st.open_storage(url))
        for i in range(5):
            st.update_study_user_attr(s, "kept", lambda old, v=(k, i): [*(old or []), list(v)])

    threads = [threading.Thread(target=add, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    kept = optuna.load_study(study_name=study.study_name, storage=st.open_storage(url))
    kept = kept.user_attrs["kept"]
    assert sorted(map(tuple, kept)) == [(k, i) for k in range(6) for i in range(5)]


KILLED_WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    from search import storage as st
    storage = st.open_storage(sys.argv[1], heartbeat=True)
    study = optuna.load_study(study_name=sys.argv[2], storage=storage)
    st.limit_trials(study, 3)
    def objective(trial):
        trial.suggest_float("x", 0, 1)
        print("training", flush=True)
        time.sleep(600)
    study.optimize(objective, n_trials=1)
    """
)


def test_a_killed_worker_trial_is_failed_and_rerun_through_the_proxy(served, tiny_config):
    url, db_url = served
    study = new_study(url, n=3)
    victim = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, url, study.study_name],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert victim.stdout.readline().strip() == "training"
        with pg_connect(db_url) as conn:  # its heartbeat reached the database through the proxy
            deadline = time.monotonic() + 60
            while not conn.execute("SELECT count(*) FROM trial_heartbeats").fetchone()[0]:
                assert time.monotonic() < deadline, "no heartbeat came through the proxy"
                time.sleep(0.2)
    finally:
        victim.kill()
        victim.wait()
    from search import runner

    loop = runner.run_study(
        study, lambda t: t.suggest_float("x", 0, 1), load_config(tiny_config), n_trials=3
    )
    assert loop.finished == 3
    trials = study.get_trials(deepcopy=False)
    dead = trials[0]
    assert dead.state == optuna.trial.TrialState.FAIL and dead.user_attrs["end_reason"] == "lost"
    rerun = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert rerun and rerun[0].params == dead.params
    assert_exactly(study, 3)


def test_lost_database_connections_are_ridden_out_behind_the_proxy(served, tiny_config):
    """What a PostgreSQL restart does to the proxy's connections (every one of them
    terminated, several times mid-trial): the worker goes on and the study ends at N."""
    from search import runner

    url, db_url = served
    study = new_study(url)
    cut = []

    def objective(trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number % 2 == 0:
            cut.append(pg_terminate(db_url))
        trial.report(x, 1)
        return x

    loop = runner.run_study(study, objective, load_config(tiny_config), n_trials=6)
    assert loop.finished == 6 and sum(cut) >= 1  # the proxy's connections were really cut
    assert_exactly(study, 6)


def test_a_plain_optuna_proxy_is_refused(fresh_pg_url):
    from optuna.storages._grpc.server import make_server

    plain = make_server(optuna.storages.get_storage(fresh_pg_url), "127.0.0.1", 0)
    port = plain.add_insecure_port("127.0.0.1:0")
    plain.start()
    try:
        study = optuna.create_study(storage=st.open_storage(f"grpc://127.0.0.1:{port}"))
        with pytest.raises(StorageError, match="not an `fsearch proxy`"):
            st.limit_trials(study, 3)
    finally:
        plain.stop(grace=None)


def test_an_unreachable_proxy_is_one_line(monkeypatch, workdir):
    monkeypatch.setenv("FSEARCH_PROXY_WAIT_S", "1")
    r = invoke("studies", "--storage", "grpc://127.0.0.1:9")
    assert r.exit_code != 0
    assert "cannot reach the storage proxy grpc://127.0.0.1:9" in r.output
    assert r.output.strip().count("\n") == 0
    with pytest.raises(StorageError, match="malformed"):
        st.open_storage("grpc://host:notaport")


@pytest.mark.slow
def test_fsearch_run_through_fsearch_proxy_finishes_a_tiny_study(
    fresh_pg_url, tiny_config, real_data_dir, workdir
):
    """The real commands: `fsearch proxy` in front of the database, `fsearch run` through it;
    kept models on a folder, as they would be on a shared volume."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(FSEARCH), "proxy", "--storage", fresh_pg_url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "storage proxy for postgresql+psycopg://" in server.stdout.readline()
        url = f"grpc://127.0.0.1:{port}"
        run = subprocess.run(
            [
                str(FSEARCH),
                "run",
                "--config",
                str(tiny_config),
                "--data-dir",
                str(real_data_dir),
                "--trials",
                "3",
                "--no-export",
                "--storage",
                url,
                "--artifacts",
                str(workdir / "artifacts"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "done: 3/3 finished" in run.stdout
        from search.artifacts import kept_models

        study = optuna.load_study(study_name="tiny", storage=st.open_storage(url))
        assert_exactly(study, 3)
        kept = kept_models(study)
        assert kept and all((workdir / "artifacts" / e["artifact_id"]).exists() for e in kept)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0 and "storage proxy stopped" in out
