"""Persistence: storage URLs and the RDBStorage every process uses; the only module that
knows SQLAlchemy.

Any SQLAlchemy URL works. The default is an SQLite file under studies/ (embedded, zero set-up);
PostgreSQL (`postgresql+psycopg://user@host/db`) is for many machines sharing one study.
Every URL is parsed and its server reached *before* Optuna creates tables, so a typo or a
down server gives one clear line and leaves nothing behind. Passwords never reach output:
`mask()` is used for every URL we print.

`open_storage` returns `ResilientStorage`, Optuna's RDBStorage with three additions that make
many workers on one database safe: retry with back-off on transient connection errors (a
database restart), a study-wide trial budget checked atomically with trial creation (exactly
N finished trials however many workers), and stale trials failed and re-queued in one
transaction. Environment knobs (seconds; tests shorten them): FSEARCH_HEARTBEAT_S,
FSEARCH_GRACE_S, FSEARCH_DB_RETRY_S.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import logging
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from search import _optuna
from search.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

ENV_STORAGE = "FSEARCH_STORAGE"
ENV_STORAGE_FILE = "FSEARCH_STORAGE_FILE"
DEFAULT_DB = Path("studies") / "fsearch.db"
# Heartbeats let other workers notice a dead one: a RUNNING trial with no beat for the grace
# period is failed and its parameters re-queued (Optuna's RetryHeartbeatStaleTrialCallback).
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 90


def default_url() -> str:
    return f"sqlite:///{DEFAULT_DB.as_posix()}"


def resolve_url(url: str | None) -> str:
    """--storage, else $FSEARCH_STORAGE, else the URL in the file $FSEARCH_STORAGE_FILE (a
    secret mounted by Docker or Kubernetes), else the SQLite file studies/fsearch.db."""
    if url or os.environ.get(ENV_STORAGE):
        return url or os.environ[ENV_STORAGE]
    path = os.environ.get(ENV_STORAGE_FILE)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise StorageError(
                f"{ENV_STORAGE_FILE}={path!r}: cannot read it ({e.strerror})"
            ) from None
    return default_url()


# Query parameters that carry a secret (libpq and drivers accept a password there too).
_SECRET_KEYS = ("password", "passwd", "pwd", "secret", "token", "sslpassword")


def mask(url: str) -> str:
    """The URL with any password (in the user part or the query string) replaced by ***, safe
    to print or store."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        secret = {k: "***" for k in u.query if k.lower() in _SECRET_KEYS}
        shown = u.update_query_dict(secret).render_as_string(hide_password=True)
        return shown.replace("%2A%2A%2A", "***")
    except Exception:
        # Unparseable: drop everything between '://' and '@', and every query string.
        head, sep, rest = url.partition("://")
        rest = rest.split("?", 1)[0]
        if sep and "@" in rest:
            return f"{head}://***@{rest.split('@', 1)[1]}"
        return f"{head}{sep}{rest}"


@dataclass(frozen=True)
class StorageInfo:
    url: str
    dialect: str
    sqlite_path: Path | None  # the database file for SQLite URLs, None for servers

    @property
    def masked(self) -> str:
        return mask(self.url)


def parse_url(url: str) -> StorageInfo:
    """Check the URL's syntax and dialect; no connection is made."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if url.startswith("grpc://"):  # an `fsearch proxy` in front of the database (search/proxy.py)
        return StorageInfo(url, "grpc", None)
    try:
        u = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage URL {mask(url)!r} is malformed; expected e.g. sqlite:///studies/fsearch.db "
            "or postgresql+psycopg://user@host/dbname"
        ) from None
    try:
        u.get_dialect()
    except NoSuchModuleError:
        raise StorageError(
            f"storage URL {mask(url)!r}: unknown database dialect {u.drivername!r}; "
            "use sqlite:///PATH or postgresql+psycopg://user@host/dbname"
        ) from None
    except ImportError as e:
        raise StorageError(
            f"storage URL {mask(url)!r}: the driver for {u.drivername!r} is not installed ({e})"
        ) from None
    if u.get_backend_name() == "sqlite":
        db = u.database
        if not db or db == ":memory:":
            raise StorageError(
                "an in-memory SQLite storage would lose the study; give a file: sqlite:///PATH"
            )
        return StorageInfo(url, "sqlite", Path(db))
    return StorageInfo(url, u.get_backend_name(), None)


def _engine_kwargs(info: StorageInfo) -> dict[str, Any]:
    if info.dialect == "sqlite":
        # Wait for a lock instead of failing at once when another process writes.
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if info.dialect == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


def check_reachable(info: StorageInfo, *, must_exist: bool = False) -> None:
    """Connect once (or check the SQLite file's directory) and turn failures into one line."""
    if info.sqlite_path is not None:
        p = info.sqlite_path
        if must_exist and not p.is_file():
            raise StorageError(
                f"no study database at {str(p)!r}; run `fsearch run` first or pass --storage URL"
            )
        if p.is_dir():
            raise StorageError(f"SQLite path {str(p)!r} is a directory; give a file name")
        parent = p.parent if str(p.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise StorageError(f"cannot create {str(p)!r}: {str(parent)!r} is a file")
        return
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    engine = sqlalchemy.create_engine(info.url, **_engine_kwargs(info))
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", e) or e).strip().splitlines()
        first = reason[0] if reason else type(e).__name__
        raise StorageError(
            f"cannot reach storage {info.masked}: {mask_text(first, info.url)}; "
            f"{_connect_hint(first, info.url)}"
        ) from None
    finally:
        engine.dispose()


def _connect_hint(reason: str, url: str) -> str:
    """The fix for a failed connection, from the server's reason."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    low = reason.lower()
    if "database" in low and "does not exist" in low:
        return f"create it (createdb -h {u.host or 'localhost'} {u.database}) or fix the name"
    if "password" in low or "role" in low or "authentication" in low:
        return f"check the user ({u.username}) and password (the password is not shown)"
    return "check the host and port, and that the database server is running"


def mask_text(text: str, url: str) -> str:
    """Remove the URL's passwords (user part and query string) from a message that may quote
    them."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:
        return text
    secrets = [u.password] if u.password else []
    for key, value in u.query.items():
        if key.lower() in _SECRET_KEYS:
            secrets += [value] if isinstance(value, str) else list(value)
    for secret in secrets:
        text = text.replace(str(secret), "***")
    return text


# --------------------------------------------------------------------------- many workers

log = logging.getLogger(__name__)

# A PostgreSQL restart takes seconds; a minute of retrying rides it out without hiding a server
# that is really gone. Back-off doubles from 0.2 s up to 5 s, with jitter so that a dozen
# workers do not reconnect in lock-step.
RETRY_DEADLINE_S = 60.0
RETRY_FIRST_DELAY_S = 0.2
RETRY_MAX_DELAY_S = 5.0


class TrialBudgetReached(Exception):
    """No new trial may start: finished + running + waiting trials already reach the budget.

    Not an error for the user: the worker waits for the running trials (they may fail and free
    a slot) or stops when the study is done.
    """


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in whole seconds, from the environment or defaults."""
    interval = int(_env_seconds("FSEARCH_HEARTBEAT_S", HEARTBEAT_INTERVAL_S))
    grace = int(_env_seconds("FSEARCH_GRACE_S", GRACE_PERIOD_S))
    if interval < 1 or grace <= interval:
        raise ConfigError(
            f"FSEARCH_GRACE_S ({grace}) must exceed FSEARCH_HEARTBEAT_S ({interval}), "
            "both whole seconds >= 1, or a live trial could be taken for a dead one"
        )
    return interval, grace


# Operational errors that no retry heals: a full disk, a read-only or corrupt database file,
# missing permissions. Retrying them for FSEARCH_DB_RETRY_S would only stall every worker.
_PERMANENT = (
    "disk is full",
    "no space left",
    "readonly database",
    "read-only",
    "disk image is malformed",
    "file is not a database",
    "permission denied",
    "unable to open database file",
    "disk quota exceeded",
)


def is_transient(e: BaseException) -> bool:
    """A lost or refused connection, a deadlock or a locked SQLite file: worth another try.

    Optuna wraps SQLAlchemy errors raised at commit in StorageInternalError; look through it.
    Integrity and data errors are not transient: retrying them would only repeat them; nor
    are operational errors that say the disk is full or the file read-only or corrupt.
    """
    from sqlalchemy import exc

    e = _unwrapped(e)
    if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
        return True
    transient = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)
    return isinstance(e, (*transient, exc.PendingRollbackError)) and not is_permanent(e)


def _fault_hint(reason: str) -> str:
    low = reason.lower()
    if "full" in low or "space" in low or "quota" in low:
        return "free disk space, then run the same command again to resume"
    if "malformed" in low or "not a database" in low:
        return "the database file is damaged: restore it from a copy, or start anew with --storage"
    return "fix the database file's permissions, then run the same command again to resume"


def _unwrapped(e: BaseException) -> BaseException:
    """The SQLAlchemy error inside Optuna's StorageInternalError (raised at commit)."""
    if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ is not None:
        return e.__cause__
    return e


def is_permanent(e: BaseException) -> bool:
    """A database error that says the disk is full, or the file read-only or corrupt."""
    from sqlalchemy import exc

    e = _unwrapped(e)
    if not isinstance(e, (exc.DBAPIError, sqlite3.Error)):
        return False
    reason = str(getattr(e, "orig", None) or e).lower()
    return any(marker in reason for marker in _PERMANENT)


def retry_transient(
    fn: Callable[[], Any],
    *,
    url: str,
    give_up: Callable[[str], Exception],
    before_retry: Callable[[], None] | None = None,
) -> Any:
    """fn(), retried with jittered exponential back-off while it fails with a transient error
    (`is_transient`), for up to FSEARCH_DB_RETRY_S seconds; then give_up(reason) is raised.
    Any other error propagates at once. Messages never show the URL's password."""
    deadline = time.monotonic() + _env_seconds("FSEARCH_DB_RETRY_S", RETRY_DEADLINE_S)
    delay = RETRY_FIRST_DELAY_S
    while True:
        try:
            return fn()
        except Exception as e:
            if is_permanent(e):
                reason = mask_text(_first_line(e), url)
                raise StorageError(
                    f"storage {mask(url)} cannot be written or read: {reason}; "
                    f"{_fault_hint(reason)}"
                ) from None
            if not is_transient(e):
                raise
            reason = mask_text(_first_line(e), url)
            if time.monotonic() + delay > deadline:
                raise give_up(reason) from None
            log.warning("storage: %s; retrying in %.1f s", reason, delay)
            if before_retry is not None:
                before_retry()
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RETRY_MAX_DELAY_S)


def _retried(name: str) -> Callable:
    """RDBStorage.<name>, retried on transient errors (looked up at call time)."""
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def wrapper(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._with_retry(getattr(optuna.storages.RDBStorage, name), self, *args, **kwargs)

    return wrapper


class _TrialSink:
    """Stands in for the study when Optuna's RetryHeartbeatStaleTrialCallback runs inside our
    transaction: the callback decides *whether* and *how* to re-queue (max_retry, retry
    history in system attrs), and we insert the trial it builds in the same transaction."""

    def __init__(self) -> None:
        self.trials: list[FrozenTrial] = []

    def add_trial(self, trial: FrozenTrial) -> None:
        self.trials.append(trial)


class ResilientStorage(optuna.storages.RDBStorage):
    """RDBStorage that survives database restarts and lets many workers share one budget.

    Retry: every public storage method is retried with bounded exponential back-off on
    transient errors (`is_transient`). That is safe only where repeating a call whose first
    commit landed but whose acknowledgement was lost does no harm:

    - reads, heartbeats and attribute / intermediate-value / param writes are upserts or
      ignore the duplicate key (Optuna passes ignore_integrity_error): idempotent;
    - set_trial_state_values to a finished state: a repeat finds the trial already finished
      and raises UpdateFinishedTrialError; if the stored state is the one we asked for, our
      first attempt landed and we return True;
    - creating a trial (and WAITING -> RUNNING when popping a queued trial) is NOT idempotent:
      a lost ack leaves a RUNNING trial nobody runs (Optuna's own create_new_trial already
      retries five times on such errors and has the same window). Such a trial never gets a
      heartbeat, so Optuna would never call it stale; `_sweep_stale` also fails RUNNING trials
      with no heartbeat older than the grace period, so the orphan frees its slot instead of
      blocking the study forever. The window is one lost packet at one commit: rare, and now
      harmless.

    Budget: `limit_trials(study_id, n)` makes new (non-template) trials fail with
    TrialBudgetReached once finished + running + waiting >= n. The count and the insert run in
    one transaction holding a lock on the study row (a row lock on PostgreSQL, the write lock
    on SQLite), the same lock Optuna takes to number trials, so two workers cannot both take
    the last slot. WAITING trials count because a re-queued trial replaces a running one.

    Stale trials: RUNNING trials whose heartbeat is older than the grace period are failed and
    re-queued (Optuna's RetryHeartbeatStaleTrialCallback decides how) in one transaction under
    the same lock. Optuna's fail_stale_trials does this in two steps (fail, then add a WAITING
    copy), and between them a worker could take the freed slot: the study would end with N + 1.
    `_get_stale_trial_ids` therefore does the whole job and returns [], leaving Optuna's
    caller (run before every trial) nothing to do twice.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._budgets: dict[int, int] = {}
        self._masked = mask(url)
        super().__init__(url, **kwargs)
        if self.engine.name == "sqlite":
            import sqlalchemy

            # With WAL (see _enable_sqlite_wal), synchronous=NORMAL syncs at checkpoints
            # instead of every commit: a crash of fsearch never loses or corrupts anything;
            # only a power cut may lose the last commits. A trial writes dozens of small
            # commits (one per reported epoch and attribute), each a full sync otherwise.
            sqlalchemy.event.listen(self.engine, "connect", _sqlite_pragmas)
            self.engine.dispose()  # connections opened while creating tables lack it

    # -- retry ---------------------------------------------------------------------------

    def _with_retry(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        def give_up(reason: str) -> StorageError:
            return StorageError(
                f"lost the connection to storage {self._masked} and could not get it back: "
                f"{reason}; check the database server, then run the same command again to "
                "resume"
            )

        # Drop this thread's broken session before a retry; pool_pre_ping replaces dead
        # connections.
        return retry_transient(
            functools.partial(fn, *args, **kwargs),
            url=self.url,
            give_up=give_up,
            before_retry=self.scoped_session.remove,
        )

    # Reads and idempotent writes: plain retry.
    create_new_study = _retried("create_new_study")
    delete_study = _retried("delete_study")
    set_study_user_attr = _retried("set_study_user_attr")
    set_study_system_attr = _retried("set_study_system_attr")
    get_study_id_from_name = _retried("get_study_id_from_name")
    get_study_name_from_id = _retried("get_study_name_from_id")
    get_study_directions = _retried("get_study_directions")
    get_study_user_attrs = _retried("get_study_user_attrs")
    get_study_system_attrs = _retried("get_study_system_attrs")
    get_all_studies = _retried("get_all_studies")
    # (Public methods that only delegate to a private one are covered through it:
    # set_trial_param, get_all_trials, get_best_trial. _CachedStorage calls the private ones.)
    _set_trial_param = _retried("_set_trial_param")
    get_trial_param = _retried("get_trial_param")
    set_trial_intermediate_value = _retried("set_trial_intermediate_value")
    set_trial_user_attr = _retried("set_trial_user_attr")
    set_trial_system_attr = _retried("set_trial_system_attr")
    get_trial_id_from_study_id_trial_number = _retried("get_trial_id_from_study_id_trial_number")
    get_trial = _retried("get_trial")
    _get_trials = _retried("_get_trials")
    _get_best_trial_id = _retried("_get_best_trial_id")

    def record_heartbeat(self, trial_id: int) -> None:
        # Runs in Optuna's heartbeat thread: an exception there would kill the thread with a
        # traceback and the live trial would later be taken for a dead one. After the retry
        # deadline, warn and let the next beat try again.
        try:
            self._with_retry(super().record_heartbeat, trial_id)
        except StorageError as e:
            log.warning("storage: heartbeat not recorded: %s", e)

    def set_trial_state_values(
        self, trial_id: int, state: optuna.trial.TrialState, values: Any = None
    ) -> bool:
        attempts = 0

        def attempt() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                return super(ResilientStorage, self).set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A repeat after a lost ack: our first attempt finished the trial.
                if attempts > 1 and state.is_finished():
                    if super(ResilientStorage, self).get_trial(trial_id).state == state:
                        return True
                raise

        return self._with_retry(attempt)

    # -- budget ----------------------------------------------------------------------------

    def limit_trials(self, study_id: int, n: int) -> None:
        """New trials of the study fail with TrialBudgetReached once n are finished or live."""
        self._budgets[study_id] = n

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None):
        # _CachedStorage (which wraps every RDBStorage a Study uses) calls this private method,
        # not create_new_trial, so the budget check belongs here.
        limit = self._budgets.get(study_id)
        if template_trial is not None or limit is None:
            return self._with_retry(super()._create_new_trial, study_id, template_trial)
        return self._with_retry(self._create_within_budget, study_id, limit)

    def _lock_study(self, session, study_id: int) -> None:
        """Serialise budget and stale-trial changes of one study across processes.

        A no-op UPDATE of the study row: a row lock on PostgreSQL (held to commit, so others
        wait), and the database write lock on SQLite, where SELECT ... FOR UPDATE is ignored.
        Taking it first, before any read, also avoids SQLite's "cannot upgrade a read
        transaction" failure in WAL mode.
        """
        import sqlalchemy

        models = _optuna.rdb_models()
        session.execute(
            sqlalchemy.update(models.StudyModel)
            .where(models.StudyModel.study_id == study_id)
            .values(study_name=models.StudyModel.study_name)
        )

    def _create_within_budget(self, study_id: int, limit: int) -> FrozenTrial:
        import sqlalchemy
        from optuna.trial import FrozenTrial, TrialState

        models = _optuna.rdb_models()
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        with _optuna.create_scoped_session(self.scoped_session) as session:
            self._lock_study(session, study_id)
            taken = session.scalar(
                sqlalchemy.select(sqlalchemy.func.count(models.TrialModel.trial_id)).where(
                    models.TrialModel.study_id == study_id, models.TrialModel.state.in_(live)
                )
            )
            if taken >= limit:
                raise TrialBudgetReached(f"{taken} of {limit} trials finished or running")
            trial = self._get_prepared_new_trial(study_id, None, session)
            # Built inside the transaction, as Optuna does: the row expires at commit.
            return FrozenTrial(
                number=trial.number,
                state=trial.state,
                value=None,
                values=None,
                datetime_start=trial.datetime_start,
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=trial.trial_id,
            )

    # -- read-modify-write of a study attribute ---------------------------------------------

    def update_study_user_attr(self, study_id: int, key: str, update: Callable[[Any], Any]):
        """Set the study user attribute `key` to update(its current value or None), read and
        written in one transaction under the study lock: concurrent workers' updates queue
        instead of overwriting each other. Returns (old, new)."""
        return self._with_retry(self._update_attr, study_id, key, update)

    def _update_attr(self, study_id: int, key: str, update: Callable[[Any], Any]):
        models = _optuna.rdb_models()
        with _optuna.create_scoped_session(self.scoped_session) as session:
            self._lock_study(session, study_id)
            row = (
                session.query(models.StudyUserAttributeModel)
                .filter_by(study_id=study_id, key=key)
                .one_or_none()
            )
            old = json.loads(row.value_json) if row is not None else None
            new = update(old)
            if row is None:
                row = models.StudyUserAttributeModel(study_id=study_id, key=key)
                session.add(row)
            row.value_json = json.dumps(new)
        return old, new

    # -- stale trials ----------------------------------------------------------------------

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        self._with_retry(self._sweep_stale, study_id)
        return []

    def _running(self, session, study_id: int) -> list:
        import sqlalchemy
        from optuna.trial import TrialState

        models = _optuna.rdb_models()
        return (
            session.query(models.TrialModel)
            .options(sqlalchemy.orm.selectinload(models.TrialModel.heartbeats))
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study_id)
            .all()
        )

    def _stale(self, session, running: list) -> list:
        """The RUNNING trials whose last heartbeat is older than the grace period, by the
        database's clock only: clients' clocks may disagree with it and with each other."""
        import sqlalchemy

        grace = _dt.timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 1))
        db_now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        return [t for t in running if t.heartbeats and db_now - t.heartbeats[0].heartbeat > grace]

    def _stamp(self, session, trials: list) -> None:
        """Give RUNNING trials that never beat (a creation whose acknowledgement was lost, or
        a worker killed before its first beat) a heartbeat at the database's time now: they are
        stale one grace period later unless their worker beats meanwhile. Their start time,
        written with the creating client's clock, is never compared with anyone's."""
        import sqlalchemy

        models = _optuna.rdb_models()
        for trial in trials:
            try:
                with session.begin_nested():  # the worker's own first beat may win the race
                    session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))
            except sqlalchemy.exc.IntegrityError:
                pass

    def _sweep_stale(self, study_id: int) -> None:
        from optuna.trial import TrialState

        from search.outcomes import END_REASON

        models = _optuna.rdb_models()
        if self.heartbeat_interval is None:
            return
        # Cheap look first, without the lock: almost always nothing is stale or unstamped.
        with _optuna.create_scoped_session(self.scoped_session) as session:
            running = self._running(session, study_id)
            if not self._stale(session, running) and all(t.heartbeats for t in running):
                return
        callback = self.get_heartbeat_stale_trial_callback()
        with _optuna.create_scoped_session(self.scoped_session) as session:
            self._lock_study(session, study_id)
            running = self._running(session, study_id)  # again, under the lock
            self._stamp(session, [t for t in running if not t.heartbeats])
            for trial in self._stale(session, running):
                frozen = self._build_frozen_trial_from_trial_model(trial)
                frozen.state = TrialState.FAIL
                sink = _TrialSink()
                if callback is not None:
                    callback(sink, frozen)  # type: ignore[arg-type]
                why = "its worker stopped sending heartbeats (killed or lost)"
                self._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial.trial_id, END_REASON, "lost"
                )
                self._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial.trial_id, "error", why
                )
                trial.state = TrialState.FAIL
                trial.datetime_complete = _dt.datetime.now()
                for template in sink.trials:
                    self._get_prepared_new_trial(study_id, template, session)


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or getattr(e, "__cause__", None) or e
    lines = str(getattr(orig, "orig", None) or orig).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


def _enable_sqlite_wal(path: Path) -> None:
    """WAL lets readers and one writer work at once, so local workers (--jobs) rarely wait;
    the setting is stored in the file. (WAL needs a local disk: share a study across
    machines through PostgreSQL, never SQLite on a network file system.)"""
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


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


def open_storage(
    url: str | None, *, must_exist: bool = False, heartbeat: bool = False
) -> ResilientStorage:
    """Our RDBStorage for the URL, after checking it is well-formed and reachable."""
    info = parse_url(resolve_url(url))
    if info.dialect == "grpc":
        from search.proxy import open_client

        return open_client(info.url, heartbeat=heartbeat)  # type: ignore[return-value]
    kwargs: dict[str, Any] = {}
    # Heartbeats and the retry callback are experimental in Optuna; we rely on them on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if heartbeat:
        interval, grace = heartbeat_settings()  # before anything is created
        kwargs = {
            "heartbeat_interval": interval,
            "grace_period": grace,
            # A killed worker's trial is re-run with the same parameters, at most 3 times
            # (a trial that kills its worker every time is not retried forever).
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        }
    check_reachable(info, must_exist=must_exist)
    if info.sqlite_path is not None and not must_exist:
        info.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        _enable_sqlite_wal(info.sqlite_path)
    # Opening creates missing tables (checkfirst, so repeatable) and reads the schema version:
    # a connection dropped meanwhile (a restart, pg_terminate_backend) is retried like any
    # other storage call, instead of failing a worker that is just starting.

    def opened() -> ResilientStorage:
        with _schema_lock(info):
            return ResilientStorage(info.url, engine_kwargs=_engine_kwargs(info), **kwargs)

    def cannot_open(reason: str) -> StorageError:
        return StorageError(f"cannot open storage {info.masked}: {reason}")

    try:
        return retry_transient(opened, url=info.url, give_up=cannot_open)
    except StorageError:
        raise
    except Exception as e:  # schema or driver problems surface here
        raise cannot_open(mask_text(_first_line(e), info.url)) from None


def limit_trials(study: optuna.Study, n: int) -> bool:
    """Give the study a budget of n trials if its storage is ours; False if it is not."""
    backend = _optuna.storage_backend(study)
    if not hasattr(backend, "limit_trials"):  # ResilientStorage or proxy.ProxyClient
        return False
    backend.limit_trials(_optuna.study_id(study), n)
    return True


def update_study_user_attr(study: optuna.Study, key: str, update: Callable[[Any], Any]):
    """update() applied to a study user attribute atomically (ResilientStorage: one locked
    transaction); on another storage (in-memory, one process) a plain read and write.
    Returns (old, new)."""
    backend = _optuna.storage_backend(study)
    if hasattr(backend, "update_study_user_attr"):  # ResilientStorage or proxy.ProxyClient
        return backend.update_study_user_attr(_optuna.study_id(study), key, update)
    old = study.user_attrs.get(key)
    new = update(old)
    study.set_user_attr(key, new)
    return old, new


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and re-queue) trials of dead workers now, as Optuna does before every trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
