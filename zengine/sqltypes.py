"""Column types for plugins that keep tables (the SQL backend, tokens, the audit store): the
same behaviour on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql


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
