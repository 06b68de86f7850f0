"""Opening a study database: the storage every fsearch process uses, assembled from the
concerns, and `open_storage`, which checks the URL and the server before Optuna creates or
loads anything."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

import optuna

from search.errors import StorageError
from search.storage._budget import TrialBudget
from search.storage._retry import fault_error, first_line, retry_transient
from search.storage._stale import StaleTrialSweep, heartbeat_kwargs
from search.storage._transactions import AtomicStudyAttrs
from search.storage._urls import (
    StorageInfo,
    check_reachable,
    enable_sqlite_wal,
    engine_kwargs,
    mask_text,
    parse_url,
    resolve_url,
    sqlite_pragmas,
)

if TYPE_CHECKING:
    from search.proxy import ProxyClient


class ResilientStorage(TrialBudget, StaleTrialSweep, AtomicStudyAttrs):
    """RDBStorage that survives database restarts and lets many workers share one budget,
    one concern per base class, as Optuna composes its own storages:

    - RetryingStorage (_retry.py), under all of them: every call retried with back-off on
      transient errors, where repeating it is safe (its docstring says why each is);
    - TrialBudget (_budget.py): a study-wide trial budget checked in the insert's transaction;
    - StaleTrialSweep (_stale.py): dead workers' trials failed and re-queued in one
      transaction;
    - AtomicStudyAttrs (_transactions.py): a study attribute read and written under the
      study lock.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        if self.engine.name == "sqlite":
            import sqlalchemy

            sqlalchemy.event.listen(self.engine, "connect", sqlite_pragmas)
            self.engine.dispose()  # connections opened while creating tables lack it


# Any 64-bit number, the same in every fsearch process: "fsearch\0" in ASCII.
_SCHEMA_LOCK_KEY = 0x6673656172636800


@contextlib.contextmanager
def _schema_lock(info: StorageInfo):
    """Hold a PostgreSQL advisory lock while Optuna creates or checks its tables.

    Workers started together on an empty database (compose up --scale worker=4) would run
    CREATE TABLE concurrently, and PostgreSQL fails all but one with a duplicate key in its
    catalog. SQLite serialises schema changes itself.
    """
    if info.dialect != "postgresql":
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(info.url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({_SCHEMA_LOCK_KEY})"))
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({_SCHEMA_LOCK_KEY})"))
    finally:
        engine.dispose()


# Database connections a worker keeps open between calls: its main thread calls the storage,
# and the heartbeat thread borrows a second connection for a beat that meets a call of the
# main thread, closed after it, instead of holding one idle for the whole run. With
# SQLAlchemy's default pool every worker held both, and connections were what broke first
# at 64 direct workers (BENCHMARKS.md `scale`). The proxy keeps one per server thread; the
# dashboard and the CLI's readers keep SQLAlchemy's default pool.
WORKER_CONNECTIONS = 1


def open_storage(
    url: str | None,
    *,
    must_exist: bool = False,
    heartbeat: bool = False,
    connections: int | None = None,
) -> ResilientStorage | ProxyClient:
    """Our RDBStorage for the URL, after checking it is well-formed and reachable; for
    grpc://HOST:PORT, the client of an `fsearch proxy` (search/proxy.py), which keeps the
    same guarantees through the proxy's own ResilientStorage. `connections`: kept open to a
    database server between calls (WORKER_CONNECTIONS for a worker; None: SQLAlchemy's
    default pool)."""
    info = parse_url(resolve_url(url))
    if info.dialect == "grpc":
        from search.proxy import open_client

        return open_client(info.url, heartbeat=heartbeat)
    kwargs: dict[str, Any] = {}
    # Heartbeats and the retry callback are experimental in Optuna; we rely on them on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if heartbeat:
        kwargs = heartbeat_kwargs()  # before anything is created
    check_reachable(info, must_exist=must_exist)
    if info.sqlite_path is not None and not must_exist:
        info.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    # Opening creates missing tables (checkfirst, so repeatable) and reads the schema version:
    # a connection dropped meanwhile (a restart, pg_terminate_backend) is retried like any
    # other storage call, instead of failing a worker that is just starting.

    def opened() -> ResilientStorage:
        with _schema_lock(info):
            return ResilientStorage(
                info.url, engine_kwargs=engine_kwargs(info, connections=connections), **kwargs
            )

    def cannot_open(reason: str) -> StorageError:
        return StorageError(f"cannot open storage {info.masked}: {reason}")

    try:
        if info.sqlite_path is not None and not must_exist:
            # The first read of the file: a corrupt or unreadable one fails here.
            enable_sqlite_wal(info.sqlite_path)
        return retry_transient(opened, url=info.url, give_up=cannot_open)
    except StorageError:
        raise
    except Exception as e:  # schema or driver problems surface here
        raise (
            fault_error(e, info.url) or cannot_open(mask_text(first_line(e), info.url))
        ) from None
