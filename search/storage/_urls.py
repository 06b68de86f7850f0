"""Storage URLs and connections: which database a command means, how it is shown (passwords
masked), checked before anything is created, and the engine options and SQLite settings every
connection gets. The only part of the package that talks to a server before Optuna does."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import StorageError

ENV_STORAGE = "FSEARCH_STORAGE"
ENV_STORAGE_FILE = "FSEARCH_STORAGE_FILE"
DEFAULT_DB = Path("studies") / "fsearch.db"


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


def engine_kwargs(info: StorageInfo, *, connections: int | None = None) -> dict[str, Any]:
    """SQLAlchemy engine options for the URL's database. `connections`: how many the process
    keeps open between calls (SQLAlchemy's pool_size); 2 more may open for a moment when its
    threads all call at once (a worker's heartbeat and progress threads beside its trial),
    and close again. None: SQLAlchemy's default pool (5 kept, 10 more)."""
    if info.dialect == "sqlite":
        # Wait for a lock instead of failing at once when another process writes.
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if connections is not None:
        kwargs.update(pool_size=connections, max_overflow=2)
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

    engine = sqlalchemy.create_engine(info.url, **engine_kwargs(info))
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


# --------------------------------------------------------------------------- SQLite settings


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Per connection (an engine "connect" listener). With WAL (see enable_sqlite_wal),
    synchronous=NORMAL syncs at checkpoints instead of every commit: a crash of fsearch never
    loses or corrupts anything; only a power cut may lose the last commits. A trial writes
    dozens of small commits (one per reported epoch and attribute), each a full sync
    otherwise."""
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


def enable_sqlite_wal(path: Path) -> None:
    """WAL lets readers and one writer work at once, so local workers (--jobs) rarely wait;
    the setting is stored in the file. (WAL needs a local disk: share a study across
    machines through PostgreSQL, never SQLite on a network file system.)"""
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
