"""The shared-study storage against both backends: budget, stale trials, retry, bad input.

Every test here runs on SQLite and on the real PostgreSQL server (the `pg_url` fixture;
skipped outside CI when no server answers). No TensorFlow: seconds in all.
"""

from __future__ import annotations

import threading
import time
import uuid

import optuna
import pytest
from sqlalchemy.exc import OperationalError

from search import storage as st
from search.errors import StorageError
from tests.helpers import DEFAULT_DB, invoke, pg_terminate, race_for_the_budget, study_states


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/s.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def fast_heartbeat(monkeypatch) -> None:
    monkeypatch.setenv("FSEARCH_HEARTBEAT_S", "1")
    monkeypatch.setenv("FSEARCH_GRACE_S", "2")


def new_study(url: str, *, heartbeat: bool = False) -> optuna.Study:
    storage = st.open_storage(url, heartbeat=heartbeat)
    return optuna.create_study(
        study_name=f"t-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize"
    )


def test_budget_counts_finished_running_and_waiting(backend):
    study = new_study(backend)
    assert st.limit_trials(study, 3)
    a, b, c = study.ask(), study.ask(), study.ask()
    with pytest.raises(st.TrialBudgetReached):
        study.ask()
    study.tell(a, 0.5)
    study.tell(b, state=optuna.trial.TrialState.PRUNED)
    with pytest.raises(st.TrialBudgetReached):  # finished trials keep their slots
        study.ask()
    study.tell(c, state=optuna.trial.TrialState.FAIL)  # a failed trial frees its slot
    d = study.ask()
    assert d.number == 3
    study.tell(d, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"x": 1.0})  # queued (how a dead worker's trial is re-run): holds a slot
    with pytest.raises(st.TrialBudgetReached):
        study._storage.create_new_trial(study._study_id)
    queued = study.ask()  # popping a queued trial is never refused
    assert queued.number == 4 and queued.suggest_float("x", 0, 2) == 1.0
    with pytest.raises(st.TrialBudgetReached):
        study.ask()


def test_budget_holds_under_concurrent_workers(backend):
    """Eight workers, each with its own connection, race for 20 slots: exactly 20 trials."""
    assert race_for_the_budget(
        backend, new_study(backend).study_name, workers=8, budget=20
    ) == list(range(20))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_stale_trial_is_failed_and_requeued_in_one_step(backend, fast_heartbeat):
    study = new_study(backend, heartbeat=True)
    st.limit_trials(study, 2)
    dead = study.ask()
    dead.suggest_float("x", 0, 1)
    study._storage.record_heartbeat(dead._trial_id)
    orphan = study.ask()  # created but never beat: e.g. a lost acknowledgement
    st.fail_stale_trials(study)  # any worker's sweep: the orphan gets a beat at the DB's time
    assert study.trials[1].state == optuna.trial.TrialState.RUNNING
    # Grace 2 s: both are stale a grace period after their last beat. Polled, not one sleep:
    # a loaded machine may take longer, never less, to get there.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        st.fail_stale_trials(study)
        if [t.state.name for t in study.trials[:2]] == ["FAIL", "FAIL"]:
            break
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials[:2]] == ["FAIL", "FAIL"]
    assert trials[0].user_attrs["end_reason"] == "lost"
    retries = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert {t.system_attrs["failed_trial"] for t in retries} == {dead.number, orphan.number}
    assert next(t for t in retries if t.params).params == dead.params
    # The retries took the slots back: no new trial, but the queued ones run.
    again = study.ask()
    assert again.params.get("x") in (None, dead.params["x"])


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_trial_started_by_a_skewed_clock_is_not_taken_for_a_dead_one(backend, fast_heartbeat):
    """A trial's start time is written with its client's clock. One an hour behind ours (or
    the database's) must not make its live trial look an hour old: staleness is judged by the
    database's clock only, from heartbeats."""
    import datetime as dt

    import sqlalchemy

    from search import _optuna

    study = new_study(backend, heartbeat=True)
    trial = study.ask()  # no beat yet: its worker is just starting it
    engine = _optuna.storage_backend(study).engine
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE trials SET datetime_start = :t WHERE trial_id = :i"),
            {"t": dt.datetime.now() - dt.timedelta(hours=1), "i": trial._trial_id},
        )
    st.fail_stale_trials(study)
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING


def _flaky(monkeypatch, name: str, *, fail_times: int, after_call: bool = False) -> list[int]:
    """Make RDBStorage.<name> raise a connection error `fail_times` times (after doing the
    work when after_call: a commit whose acknowledgement was lost)."""
    real = getattr(optuna.storages.RDBStorage, name)
    calls = [0]

    def method(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] <= fail_times:
            if after_call:
                real(self, *args, **kwargs)
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, name, method)
    return calls


def test_transient_errors_are_retried(backend, monkeypatch):
    study = new_study(backend)
    trial = study.ask()
    calls = _flaky(monkeypatch, "set_trial_user_attr", fail_times=2)
    trial.set_user_attr("k", 1)
    assert calls[0] == 3 and study.trials[0].user_attrs["k"] == 1


def test_finishing_a_trial_whose_ack_was_lost(backend, monkeypatch):
    study = new_study(backend)
    trial = study.ask()
    _flaky(monkeypatch, "set_trial_state_values", fail_times=1, after_call=True)
    study.tell(trial, 0.7)  # the retry finds it COMPLETE already: success, not an error
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert study.trials[0].value == 0.7


@pytest.mark.postgres
def test_retry_gives_up_with_one_line_that_masks_the_password(pg_url, monkeypatch):
    """A real server URL with a password (the server trusts local users, so it is accepted and
    ignored): the give-up line names the storage with the password masked."""
    monkeypatch.setenv("FSEARCH_DB_RETRY_S", "0.5")
    url = pg_url.replace("://postgres@", "://postgres:hunter2@")
    assert "hunter2" in url
    storage = st.open_storage(url)
    _flaky(monkeypatch, "get_all_studies", fail_times=100)
    with pytest.raises(StorageError) as e:
        storage.get_all_studies()
    msg = str(e.value)
    assert msg.startswith("lost the connection to storage postgresql+psycopg://postgres:***@")
    assert "hunter2" not in msg and "run the same command again" in msg and "\n" not in msg


def test_workers_starting_together_on_an_empty_database(fresh_pg_url):
    """Concurrent CREATE TABLE fails on PostgreSQL; open_storage serialises it."""
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            st.open_storage(fresh_pg_url, heartbeat=True)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_terminated_connections_are_replaced(pg_url):
    study = new_study(pg_url)
    study.tell(study.ask(), 0.1)
    assert pg_terminate(pg_url) >= 1  # our pooled connection dies
    study.tell(study.ask(), 0.2)  # pre-ping / retry reconnects
    assert study_states(study) == {"COMPLETE": 2}


def test_a_worker_storage_keeps_one_connection_open_after_two_threads_called_at_once(pg_url):
    """A worker's storage keeps WORKER_CONNECTIONS (1) open between calls: a second thread
    calling during the first one's transaction (the heartbeat, mid-trial) opens a second
    connection, closed again after (SQLAlchemy's default pool kept both open)."""
    import threading

    import sqlalchemy

    from search import storage as st

    storage = st.open_storage(pg_url, connections=st.WORKER_CONNECTIONS)
    pool = storage.engine.pool
    assert (pool.size(), st.WORKER_CONNECTIONS) == (1, 1)
    opened = []
    sqlalchemy.event.listen(storage.engine, "connect", lambda *_: opened.append(1))
    study = optuna.create_study(storage=storage)
    inside, release = threading.Event(), threading.Event()

    def hold():  # the main thread, mid-transaction
        with storage.engine.connect():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    before = len(opened)
    study.tell(study.ask(), 0.5)  # another thread's calls meanwhile
    assert len(opened) > before  # needed a connection of its own
    release.set()
    t.join()
    assert pool.checkedout() == 0 and pool.checkedin() == 1  # one kept, the other closed


def test_the_dashboard_and_readers_keep_sqlalchemys_default_pool(pg_url):
    from search import storage as st

    assert st.open_storage(pg_url).engine.pool.size() == 5


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://nobody:hunter2@127.0.0.1/postgres", 'role "nobody" does not exist'),
        ("postgresql+psycopg://postgres:hunter2@127.0.0.1/no_such_db", "createdb"),
        ("postgresql+psycopg://postgres:hunter2@127.0.0.1:9/x", "server is running"),
        ("postgresql+psycopg://postgres:hunter2@no-such-host.invalid/x", "resolve host"),
        ("postgresql+nodriver://postgres:hunter2@127.0.0.1/x", "unknown database dialect"),
    ],
)
def test_bad_server_urls_are_one_line(pg_url, tiny_config, url, message):
    r = invoke("run", "--config", tiny_config, "--trials", 1, "--storage", url)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert "hunter2" not in r.output and r.output.strip().count("\n") == 0
    assert not DEFAULT_DB.exists()
