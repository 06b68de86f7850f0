"""Retry: storage calls ride out a database restart, and database faults become one line.

`retry_transient` is the one place that decides what an error from the database means: a
transient one (a lost connection, a deadlock, a locked file) is retried with back-off, a
permanent one (a full disk, a read-only or corrupt file) becomes a StorageError at once
(`fault_error`), anything else propagates unchanged. `RetryingStorage` routes every RDBStorage
method it may safely repeat through it.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import optuna

from search.errors import ConfigError, StorageError
from search.storage._urls import mask, mask_text

# The package's logger, as before the split (filters and handlers configured by name keep working).
log = logging.getLogger("search.storage")

# A PostgreSQL restart takes seconds; a minute of retrying rides it out without hiding a server
# that is really gone. Back-off doubles from 0.2 s up to 5 s, with jitter so that a dozen
# workers do not reconnect in lock-step.
RETRY_DEADLINE_S = 60.0
RETRY_FIRST_DELAY_S = 0.2
RETRY_MAX_DELAY_S = 5.0


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable `name`, else `default`."""
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


def _unwrapped(e: BaseException) -> BaseException:
    """The SQLAlchemy error inside Optuna's StorageInternalError (raised at commit)."""
    if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ is not None:
        return e.__cause__
    return e


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


def is_permanent(e: BaseException) -> bool:
    """A database error that says the disk is full, or the file read-only or corrupt."""
    from sqlalchemy import exc

    e = _unwrapped(e)
    if not isinstance(e, (exc.DBAPIError, sqlite3.Error)):
        return False
    reason = str(getattr(e, "orig", None) or e).lower()
    return any(marker in reason for marker in _PERMANENT)


def first_line(e: BaseException) -> str:
    """The database's own reason for an error, first line only (drivers add SQL and links)."""
    orig = getattr(e, "orig", None) or getattr(e, "__cause__", None) or e
    lines = str(getattr(orig, "orig", None) or orig).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _fault_hint(reason: str) -> str:
    low = reason.lower()
    if "full" in low or "space" in low or "quota" in low:
        return "free disk space, then run the same command again to resume"
    if "malformed" in low or "not a database" in low:
        return "the database file is damaged: restore it from a copy, or start anew with --storage"
    return "fix the database file's permissions, then run the same command again to resume"


def fault_error(e: BaseException, url: str) -> StorageError | None:
    """The one line for a permanent fault (`is_permanent`): the storage (password masked),
    the database's reason and the fix. None for any other error."""
    if not is_permanent(e):
        return None
    reason = mask_text(first_line(e), url)
    return StorageError(
        f"storage {mask(url)} cannot be written or read: {reason}; {_fault_hint(reason)}"
    )


def retry_transient(
    fn: Callable[[], Any],
    *,
    url: str,
    give_up: Callable[[str], Exception],
    before_retry: Callable[[], None] | None = None,
) -> Any:
    """fn(), retried with jittered exponential back-off while it fails with a transient error
    (`is_transient`), for up to FSEARCH_DB_RETRY_S seconds; then give_up(reason) is raised.
    A permanent fault is `fault_error`'s line at once; any other error propagates at once.
    Messages never show the URL's password."""
    deadline = time.monotonic() + env_seconds("FSEARCH_DB_RETRY_S", RETRY_DEADLINE_S)
    delay = RETRY_FIRST_DELAY_S
    while True:
        try:
            return fn()
        except Exception as e:
            fault = fault_error(e, url)
            if fault is not None:
                raise fault from None
            if not is_transient(e):
                raise
            reason = mask_text(first_line(e), url)
            if time.monotonic() + delay > deadline:
                raise give_up(reason) from None
            log.warning("storage: %s; retrying in %.1f s", reason, delay)
            if before_retry is not None:
                before_retry()
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RETRY_MAX_DELAY_S)


# RDBStorage methods that are retried as they are: reads and idempotent writes (see
# RetryingStorage). Public methods that only delegate to a private one are covered through it
# (set_trial_param, get_all_trials, get_best_trial): _CachedStorage calls the private ones.
RETRIED_AS_IS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "_set_trial_param",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "_get_trials",
    "_get_best_trial_id",
)


def _retried(name: str) -> Callable:
    """RDBStorage.<name>, retried on transient errors (looked up at call time)."""
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def wrapper(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._with_retry(getattr(optuna.storages.RDBStorage, name), self, *args, **kwargs)

    return wrapper


class RetryingStorage(optuna.storages.RDBStorage):
    """RDBStorage whose calls are retried with bounded exponential back-off on transient
    errors (`is_transient`). That is safe only where repeating a call whose first commit
    landed but whose acknowledgement was lost does no harm:

    - reads, heartbeats and attribute / intermediate-value / param writes are upserts or
      ignore the duplicate key (Optuna passes ignore_integrity_error): idempotent
      (RETRIED_AS_IS, and record_heartbeat);
    - set_trial_state_values to a finished state: a repeat finds the trial already finished
      and raises UpdateFinishedTrialError; if the stored state is the one we asked for, our
      first attempt landed and we return True;
    - creating a trial (and WAITING -> RUNNING when popping a queued trial) is NOT idempotent:
      a lost ack leaves a RUNNING trial nobody runs (Optuna's own create_new_trial already
      retries five times on such errors and has the same window). Such a trial never gets a
      heartbeat, so Optuna would never call it stale; the stale sweep (_stale.py) also fails
      RUNNING trials with no heartbeat older than the grace period, so the orphan frees its
      slot instead of blocking the study forever. The window is one lost packet at one
      commit: rare, and then harmless.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._masked = mask(url)
        super().__init__(url, **kwargs)

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
                return super(RetryingStorage, self).set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A repeat after a lost ack: our first attempt finished the trial.
                if attempts > 1 and state.is_finished():
                    if super(RetryingStorage, self).get_trial(trial_id).state == state:
                        return True
                raise

        return self._with_retry(attempt)


for _name in RETRIED_AS_IS:
    setattr(RetryingStorage, _name, _retried(_name))
del _name
