"""search/storage.py: storage URLs, open_storage's checks and the heartbeat settings.

The shared-study behaviour (budget, stale trials, retry) is in test_postgres.py, on both
backends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from search import storage as st
from search.errors import ConfigError, StorageError


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is malformed"),
        ("nosuchdb://x/y", "unknown database dialect 'nosuchdb'"),
        ("sqlite://", "in-memory SQLite"),
    ],
)
def test_parse_url_refuses_bad_urls_with_the_reason(url, message):
    with pytest.raises(StorageError, match=message):
        st.parse_url(url)


def test_parse_url_of_sqlite_gives_the_database_file_and_of_a_server_none():
    info = st.parse_url("sqlite:///studies/x.db")
    assert (info.dialect, info.sqlite_path.as_posix()) == ("sqlite", "studies/x.db")
    info = st.parse_url("postgresql+psycopg://bob:s3cret@db/x")
    assert (info.dialect, info.sqlite_path) == ("postgresql", None)
    assert info.masked == "postgresql+psycopg://bob:***@db/x"


def test_mask_replaces_the_password_even_in_an_unparseable_url():
    assert st.mask("postgresql+psycopg://bob:s3cret@db/x") == "postgresql+psycopg://bob:***@db/x"
    assert "s3cret" not in st.mask("garbage://bob:s3cret@@")


def test_unreachable_server_is_one_line_without_the_password():
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:9/x"
    with pytest.raises(StorageError) as e:
        st.open_storage(url)
    msg = str(e.value)
    assert "cannot reach storage" in msg and "s3cret" not in msg and "\n" not in msg


def test_sqlite_file_under_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        st.open_storage(f"sqlite:///{tmp_path}/afile/db.sqlite")


def test_must_exist_refuses_a_missing_sqlite_file_without_creating_it(tmp_path):
    with pytest.raises(StorageError, match="no study database"):
        st.open_storage(f"sqlite:///{tmp_path}/none.db", must_exist=True)
    assert not (tmp_path / "none.db").exists()


def test_resolve_url_is_the_given_url_else_the_env_else_studies_fsearch_db(workdir, monkeypatch):
    assert st.resolve_url(None) == "sqlite:///studies/fsearch.db"
    monkeypatch.setenv("FSEARCH_STORAGE", "sqlite:///elsewhere/x.db")
    assert st.resolve_url(None) == "sqlite:///elsewhere/x.db"
    assert st.resolve_url("sqlite:///given.db") == "sqlite:///given.db"


def test_heartbeat_settings_must_be_positive_seconds_with_grace_above_interval(monkeypatch):
    monkeypatch.setenv("FSEARCH_HEARTBEAT_S", "5")
    monkeypatch.setenv("FSEARCH_GRACE_S", "5")
    with pytest.raises(ConfigError, match="must exceed"):
        st.heartbeat_settings()
    monkeypatch.setenv("FSEARCH_GRACE_S", "soon")
    with pytest.raises(ConfigError, match="positive number of seconds"):
        st.heartbeat_settings()
    monkeypatch.setenv("FSEARCH_GRACE_S", "6")
    assert st.heartbeat_settings() == (5, 6)


def test_bad_heartbeat_settings_are_refused_before_anything_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("FSEARCH_GRACE_S", "1")
    with pytest.raises(ConfigError, match="FSEARCH_GRACE_S"):
        st.open_storage(f"sqlite:///{tmp_path}/new/s.db", heartbeat=True)
    assert not (tmp_path / "new").exists()


def test_mask_hides_a_password_given_in_the_query_string():
    url = "postgresql+psycopg://bob@db/x?password=s3cret&sslmode=require"
    assert st.mask(url) == "postgresql+psycopg://bob@db/x?password=***&sslmode=require"
    assert st.mask_text("auth failed for s3cret", url) == "auth failed for ***"


def test_unreachable_server_with_a_query_password_never_prints_it():
    with pytest.raises(StorageError) as e:
        st.open_storage("postgresql+psycopg://bob@127.0.0.1:9/x?password=s3cret")
    assert "s3cret" not in str(e.value) and "cannot reach storage" in str(e.value)


def test_storage_url_can_come_from_a_file_named_by_the_env(workdir, monkeypatch, tmp_path):
    secret = tmp_path / "db-url"
    secret.write_text("sqlite:///from/file.db\n")
    monkeypatch.setenv("FSEARCH_STORAGE_FILE", str(secret))
    assert st.resolve_url(None) == "sqlite:///from/file.db"
    monkeypatch.setenv("FSEARCH_STORAGE", "sqlite:///env.db")  # a URL given directly wins
    assert st.resolve_url(None) == "sqlite:///env.db"


def test_an_unreadable_storage_file_is_one_line(workdir, monkeypatch, tmp_path):
    monkeypatch.setenv("FSEARCH_STORAGE_FILE", str(tmp_path / "missing"))
    with pytest.raises(StorageError, match="FSEARCH_STORAGE_FILE=.*cannot read it"):
        st.resolve_url(None)


def test_update_study_user_attr_queues_concurrent_updates_instead_of_losing_one(tmp_path):
    """Worker A reads the attribute and is still deciding when worker B updates it: with an
    unlocked read-modify-write, A's write would erase B's entry."""
    import threading
    import time

    import optuna

    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage)
    inside = threading.Event()

    def slow_append(old):
        inside.set()
        time.sleep(0.5)  # B tries to update meanwhile
        return [*(old or []), "a"]

    a = threading.Thread(target=st.update_study_user_attr, args=(study, "k", slow_append))
    a.start()
    inside.wait(10)
    st.update_study_user_attr(study, "k", lambda old: [*(old or []), "b"])
    a.join(30)
    assert study.user_attrs["k"] == ["a", "b"]


def _record_sleeps(monkeypatch) -> list[float]:
    """time.sleep replaced by a recorder (the retry back-off's waits), for this test."""
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_a_full_disk_is_one_line_after_one_call_and_no_wait(tmp_path, monkeypatch):
    import optuna
    from sqlalchemy.exc import OperationalError

    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db")
    optuna.create_study(storage=storage)
    calls = []

    def full(self, *args, **kwargs):
        calls.append(1)
        raise OperationalError("INSERT ...", {}, Exception("database or disk is full"))

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_study_user_attr", full)
    slept = _record_sleeps(monkeypatch)
    with pytest.raises(StorageError, match="database or disk is full; free disk space"):
        storage.set_study_user_attr(1, "k", "v")
    assert calls == [1] and slept == []  # not retried, not waited for


def test_a_dropped_connection_is_still_retried(tmp_path, monkeypatch):
    import optuna
    from sqlalchemy.exc import OperationalError

    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db")
    optuna.create_study(storage=storage)
    real = optuna.storages.RDBStorage.set_study_user_attr
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE ...", {}, Exception("server closed the connection"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_study_user_attr", flaky)
    slept = _record_sleeps(monkeypatch)
    storage.set_study_user_attr(1, "k", "v")
    assert len(calls) == 2 and storage.get_study_user_attrs(1) == {"k": "v"}
    assert len(slept) == 1 and slept[0] > 0  # one back-off wait before the second call


def test_a_corrupt_sqlite_file_is_one_line(workdir):
    from tests.helpers import invoke

    Path("bad.db").write_bytes(b"not a database, just bytes" * 200)
    r = invoke("studies", "--storage", "sqlite:///bad.db")
    assert r.exit_code == 2 and "file is not a database" in r.output
    assert r.output.strip().count("\n") == 0
