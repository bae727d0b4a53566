"""The engine: a bounded pool with timeouts, and one place that turns outages into 503s."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from zengine.errors import BackendUnavailable, ConfigError
from zengine.settings import Settings, resolve_secret
from zengine_sql.settings import SqlSettings

log = structlog.get_logger("zengine.sql")


def resolve_url(config: SqlSettings, settings: Settings) -> URL:
    secret = resolve_secret(config.url, config.url_file, settings, "[plugins.sql] url")
    if secret is None:
        raise ConfigError("[plugins.sql] needs url or url_file")
    try:
        url = make_url(secret.get_secret_value())
    except (sa_exc.ArgumentError, ValueError):
        # The message would quote the URL, and the URL may carry a password.
        raise ConfigError("[plugins.sql] url is not a SQLAlchemy database URL "
                          "(e.g. postgresql+psycopg://user@host/db)") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(settings.resolve_path(url.database)))
    return url


def connect_args(url: URL, config: SqlSettings) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"connect_timeout": max(2, config.connect_timeout),
                "options": f"-c statement_timeout={config.statement_timeout * 1000}",
                # A dead peer that stops acknowledging is noticed after this many ms.
                "tcp_user_timeout": config.statement_timeout * 1000,
                "application_name": "zengine"}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": config.connect_timeout,
                "read_timeout": config.statement_timeout,
                "write_timeout": config.statement_timeout}
    if backend == "sqlite":
        return {"timeout": float(config.statement_timeout), "check_same_thread": False}
    return {}


def create(url: URL, config: SqlSettings) -> Engine:
    # No pool_pre_ping: it runs before anything could bound it; the request path pings
    # under its deadline instead (zengine_sql.deadline), and retries once on a dead connection.
    kwargs: dict[str, Any] = {"connect_args": connect_args(url, config)}
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool
    else:
        kwargs.update(pool_size=config.pool_size, max_overflow=config.max_overflow,
                      pool_timeout=config.pool_timeout, pool_recycle=config.pool_recycle)
    try:
        engine = sa.create_engine(url, **kwargs)
    except (sa_exc.NoSuchModuleError, sa_exc.ArgumentError, ImportError) as exc:
        # The message names the driver only: the URL may carry a password.
        raise ConfigError(f"[plugins.sql] url: cannot use database driver {url.drivername!r} "
                          f"({type(exc).__name__}); install its package or fix the URL") from None
    if url.get_backend_name() == "sqlite":
        if url.database not in (None, "", ":memory:"):
            _private_sqlite_file(str(url.database))
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _private_sqlite_file(path: str) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, commonly
    0644): it holds password hashes and encrypted SIP passwords. SQLite gives its journal and
    WAL files the database file's mode. An existing file is left as the operator made it."""
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite ignores ON DELETE CASCADE unless asked.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def describe_error(exc: BaseException, url: URL) -> str:
    """The driver's first line, with the URL's password masked."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    if url.password:
        text = text.replace(str(url.password), "***")
    if url.get_backend_name() == "sqlite" and url.database:
        # SQLite's "unable to open database file" names no file; the path is no secret.
        text = f"{text} ({url.database})"
    return f"{type(orig).__name__}: {text}"[:300]


#: What a missing table of zengine's own schema most likely means.
SCHEMA_HINT = " (schema missing? run `zengine db upgrade`)"


@contextlib.contextmanager
def unavailable_on_error(url: URL) -> Iterator[None]:
    """Database trouble becomes :class:`BackendUnavailable` (503); never leak the URL."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
        # SQLite's missing table is an OperationalError (PostgreSQL's and MariaDB's are
        # ProgrammingErrors, below): the Quickstart's database before `db upgrade`.
        hint = SCHEMA_HINT if "no such table" in str(getattr(exc, "orig", exc)) else ""
        raise BackendUnavailable(f"sql: {describe_error(exc, url)}{hint}") from None
    except sa_exc.ProgrammingError as exc:
        raise BackendUnavailable(f"sql: {describe_error(exc, url)}{SCHEMA_HINT}") from None
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise BackendUnavailable(f"sql: {describe_error(exc, url)}") from None
        raise
