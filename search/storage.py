"""Storage URLs, study creation and loading; the only module that knows SQLAlchemy.

Any SQLAlchemy URL works. The default is an SQLite file under studies/ (embedded, zero set-up);
PostgreSQL (`postgresql+psycopg://user@host/db`) is for many machines sharing one study.
Every URL is parsed and its server reached *before* Optuna creates tables, so a typo or a
down server gives one clear line and leaves nothing behind. Passwords never reach output:
`mask()` is used for every URL we print.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.config import Config
from search.errors import StorageError, StudyError

if TYPE_CHECKING:
    import optuna

ENV_STORAGE = "FSEARCH_STORAGE"
ENV_ARTIFACTS = "FSEARCH_ARTIFACTS"
DEFAULT_DB = Path("studies") / "fsearch.db"
ATTR_CONFIG = "fsearch:config"
ATTR_FINGERPRINT = "fsearch:fingerprint"
ATTR_VERSION = "fsearch:version"
# Heartbeats let other workers notice a dead one: a RUNNING trial with no beat for the grace
# period is failed and its parameters re-queued (Optuna's RetryHeartbeatStaleTrialCallback).
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 90


def default_url() -> str:
    return f"sqlite:///{DEFAULT_DB.as_posix()}"


def resolve_url(url: str | None) -> str:
    """--storage, else $FSEARCH_STORAGE, else the SQLite file studies/fsearch.db."""
    return url or os.environ.get(ENV_STORAGE) or default_url()


def mask(url: str) -> str:
    """The URL with any password replaced by ***, safe to print or store."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Unparseable: drop everything between '://' and '@' to be safe.
        head, sep, rest = url.partition("://")
        if sep and "@" in rest:
            return f"{head}://***@{rest.split('@', 1)[1]}"
        return url


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
            f"cannot reach storage {info.masked}: {mask_text(first, info.url)}; check host, "
            "port, user, password and database name (createdb NAME creates a database)"
        ) from None
    finally:
        engine.dispose()


def mask_text(text: str, url: str) -> str:
    """Remove the URL's password from a message that may quote it."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(password, "***") if password else text


def open_storage(url: str | None, *, must_exist: bool = False, heartbeat: bool = False):
    """An Optuna RDBStorage for the URL, after checking it is well-formed and reachable."""
    import optuna

    info = parse_url(resolve_url(url))
    check_reachable(info, must_exist=must_exist)
    if info.sqlite_path is not None:
        info.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": HEARTBEAT_INTERVAL_S,
            "grace_period": GRACE_PERIOD_S,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        }
    try:
        return optuna.storages.RDBStorage(info.url, engine_kwargs=_engine_kwargs(info), **kwargs)
    except Exception as e:  # schema or driver problems surface here
        raise StorageError(
            f"cannot open storage {info.masked}: {mask_text(str(e), info.url)}"
        ) from None


def artifact_dir(url: str | None, artifacts: str | None = None) -> Path:
    """Where kept models live: --artifacts, $FSEARCH_ARTIFACTS, else beside the SQLite file
    (studies/artifacts for a server database)."""
    chosen = artifacts or os.environ.get(ENV_ARTIFACTS)
    if chosen:
        return Path(chosen)
    info = parse_url(resolve_url(url))
    base = info.sqlite_path.parent if info.sqlite_path is not None else Path("studies")
    return base / "artifacts"


def open_artifact_store(path: Path, *, create: bool = True):
    """Optuna's filesystem artifact store at path (created unless create is False: readers
    then get ArtifactNotFound, which export turns into a hint about --artifacts)."""
    from optuna.artifacts import FileSystemArtifactStore

    if path.exists() and not path.is_dir():
        raise StorageError(f"artifact path {str(path)!r} is a file; give a directory")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def study_names(storage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_study(storage, name: str) -> optuna.Study:
    """An existing study, or StudyError listing the ones that exist."""
    import optuna

    names = study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none yet"
        raise StudyError(f"no study named {name!r} in this storage (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)


def describe_change(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += describe_change(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def create_or_load_study(
    storage, config: Config, *, sampler=None, pruner=None, allow_space_change: bool = False
) -> tuple[optuna.Study, bool]:
    """The config's study, created if new. Refuses a study whose search space differs.

    Returns (study, created).
    """
    import optuna

    from search import __version__

    name = config.study.name
    fingerprint = config.fingerprint()
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        old = study.user_attrs.get(ATTR_CONFIG)
        if study.user_attrs.get(ATTR_FINGERPRINT) != fingerprint:
            if not allow_space_change:
                changed = (
                    describe_change(
                        {k: old.get(k) for k in ("data", "model", "space")},
                        config.objective_dict(),
                    )
                    if isinstance(old, dict)
                    else ["(study was not made by fsearch)"]
                )
                raise StudyError(
                    f"study {name!r} exists with a different search space ({', '.join(changed)} "
                    "changed); use a new --study NAME, or --allow-space-change to continue it"
                )
            study.set_user_attr(ATTR_CONFIG, config.to_json())
            study.set_user_attr(ATTR_FINGERPRINT, fingerprint)
        return study, False
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError:
        # Another worker created it between our check and our create: join it.
        return create_or_load_study(
            storage, config, sampler=sampler, pruner=pruner, allow_space_change=allow_space_change
        )
    study.set_user_attr(ATTR_CONFIG, config.to_json())
    study.set_user_attr(ATTR_FINGERPRINT, fingerprint)
    study.set_user_attr(ATTR_VERSION, __version__)
    return study, True


def stored_config(study: optuna.Study) -> dict[str, Any]:
    cfg = study.user_attrs.get(ATTR_CONFIG)
    if not isinstance(cfg, dict):
        raise StudyError(
            f"study {study.study_name!r} was not created by fsearch (no config stored)"
        )
    return json.loads(json.dumps(cfg))
