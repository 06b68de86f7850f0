"""Persistence: storage URLs and the RDBStorage every process uses; the only package that
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

One module per concern, in the order a storage is opened and used:

- `_urls`: which database (resolve_url, parse_url), masking, the reachability check, engine
  options and SQLite settings;
- `_retry`: the one place that retries transient errors and turns database faults into one
  line, and RetryingStorage, which routes RDBStorage's methods through it;
- `_transactions`: the study lock, and a study attribute updated atomically under it;
- `_budget`: the study-wide trial budget (TrialBudget, limit_trials);
- `_stale`: heartbeat settings and the stale-trial sweep (StaleTrialSweep);
- `_open`: ResilientStorage, composed of the above, and open_storage (which hands a
  grpc://HOST:PORT URL to the `fsearch proxy` client, search/proxy.py).

Import from `search.storage`; the modules are private.
"""

from search.storage._budget import TrialBudget, TrialBudgetReached, limit_trials
from search.storage._open import WORKER_CONNECTIONS, ResilientStorage, open_storage
from search.storage._retry import (
    RETRY_DEADLINE_S,
    RETRY_FIRST_DELAY_S,
    RETRY_MAX_DELAY_S,
    RetryingStorage,
    env_seconds,
    fault_error,
    is_permanent,
    is_transient,
    retry_transient,
)
from search.storage._stale import (
    GRACE_PERIOD_S,
    HEARTBEAT_INTERVAL_S,
    StaleTrialSweep,
    fail_stale_trials,
    heartbeat_settings,
)
from search.storage._transactions import AtomicStudyAttrs, update_study_user_attr
from search.storage._urls import (
    DEFAULT_DB,
    ENV_STORAGE,
    ENV_STORAGE_FILE,
    StorageInfo,
    check_reachable,
    default_url,
    mask,
    mask_text,
    parse_url,
    resolve_url,
)

# The pre-split module's private helper under its old name (search/proxy.py reads it).
_env_seconds = env_seconds

__all__ = [
    "DEFAULT_DB",
    "ENV_STORAGE",
    "ENV_STORAGE_FILE",
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "RETRY_DEADLINE_S",
    "RETRY_FIRST_DELAY_S",
    "RETRY_MAX_DELAY_S",
    "WORKER_CONNECTIONS",
    "AtomicStudyAttrs",
    "ResilientStorage",
    "RetryingStorage",
    "StaleTrialSweep",
    "StorageInfo",
    "TrialBudget",
    "TrialBudgetReached",
    "check_reachable",
    "default_url",
    "env_seconds",
    "fail_stale_trials",
    "fault_error",
    "heartbeat_settings",
    "is_permanent",
    "is_transient",
    "limit_trials",
    "mask",
    "mask_text",
    "open_storage",
    "parse_url",
    "resolve_url",
    "retry_transient",
    "update_study_user_attr",
]
