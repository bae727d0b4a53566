"""The token table. Its own metadata and Alembic version table, so it lives beside the SQL
backend's schema (or a PBX's tables) without touching them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

VERSION_TABLE = "zengine_tokens_alembic_version"
TABLE_NAME = "zengine_tokens"


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


def login_string(length: int) -> sa.types.TypeEngine[str]:
    """Byte-exact comparison on MariaDB too (its default collation folds case)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


METADATA = sa.MetaData()

TOKENS = sa.Table(
    TABLE_NAME, METADATA,
    #: Public id for lists and revocation; random, unrelated to the token.
    sa.Column("id", sa.String(16), primary_key=True),
    #: SHA-256 of the token, hex; the token itself is never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("tenant", login_string(64), nullable=False, server_default=""),
    sa.Column("username", login_string(255), nullable=False),
    #: Account ident, or NULL for all of the user's accounts.
    sa.Column("account", login_string(128), nullable=True),
    #: ``link`` (CLI, portal) or ``document`` (put into a provisioning document); issuing
    #: revokes older tokens of the same purpose only.
    sa.Column("purpose", sa.String(16), nullable=False, server_default="link"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("max_uses", sa.Integer, nullable=False),
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    #: Seconds after a use in which the same address gets the same answer again.
    sa.Column("replay_seconds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("last_used_addr", sa.String(64), nullable=True),
    #: Who issued it (``cli``, ``portal``, ``document``), for the audit trail.
    sa.Column("issued_by", sa.String(64), nullable=False, server_default="cli"),
    sa.Index("ix_zengine_tokens_user", "tenant", "username"),
    sa.Index("ix_zengine_tokens_expires_at", "expires_at"),
)
