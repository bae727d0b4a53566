"""SQL helpers for plugins that keep tables (the SQL backend, tokens, the audit store): column
types that behave the same on SQLite, PostgreSQL and MariaDB, the embedded SQLite file, and
driver errors turned into :class:`~zengine.errors.BackendUnavailable`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Engine

from zengine.errors import BackendUnavailable


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, stored naive on every database.

    SQLite and MariaDB keep no time zone, and comparing stored values in SQL (``expires_at >
    :now``) is only right when every value is in the same zone.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class PreciseUtcDateTime(UtcDateTime):
    """:class:`UtcDateTime` with microseconds on MariaDB too (its plain ``DATETIME`` keeps
    whole seconds; PostgreSQL and SQLite keep microseconds anyway)."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> sa.types.TypeEngine[Any]:
        chosen: sa.types.TypeEngine[Any] = (mysql.DATETIME(fsp=6)
                                            if dialect.name in ("mysql", "mariadb")
                                            else sa.DateTime())
        return chosen


def login_string(length: int) -> sa.types.TypeEngine[str]:
    """Logins compare byte-exact on every database: MariaDB's default collation would make
    ``Alice`` and ``alice`` the same user while PostgreSQL and SQLite would not."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def open_sqlite(path: Path, *, wal: bool = False) -> Engine:
    """An embedded store: a file only its owner may read (it lists who may provision). With
    ``wal``, readers never wait for the writer (several worker processes share the file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    engine = sa.create_engine(URL.create("sqlite+pysqlite", database=str(path)),
                              connect_args={"timeout": 15.0, "check_same_thread": False})
    if wal:
        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
    return engine


@contextlib.contextmanager
def unavailable_on_error(what: str) -> Iterator[None]:
    """Driver errors as :class:`BackendUnavailable` naming ``what`` and the driver's first
    line: never the URL (it may carry a password)."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
            sa_exc.ProgrammingError) as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [""])[0][:200]
        raise BackendUnavailable(f"{what}: {type(orig).__name__}: {first}") from None
