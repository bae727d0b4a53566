"""The audit table. Its own metadata and Alembic version table, so it lives beside the SQL
backend's schema (or a PBX's tables) without touching them."""

from __future__ import annotations

import sqlalchemy as sa

from zengine.sqltypes import PreciseUtcDateTime, login_string

VERSION_TABLE = "zengine_audit_alembic_version"
TABLE_NAME = "zengine_audit_events"

#: Longest value each text column keeps; longer values are cut (never an INSERT error).
LIMITS = {"event": 64, "outcome": 32, "tenant": 64, "username": 255, "backend": 64,
          "client_addr": 64, "family": 32, "version": 32, "detail": 1000}

METADATA = sa.MetaData()

EVENTS = sa.Table(
    TABLE_NAME, METADATA,
    # SQLite only autoincrements an INTEGER PRIMARY KEY.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    #: When the event happened (taken on the request path, not when the row was written).
    sa.Column("at", PreciseUtcDateTime(), nullable=False),
    sa.Column("event", sa.String(LIMITS["event"]), nullable=False),
    sa.Column("outcome", sa.String(LIMITS["outcome"]), nullable=False),
    sa.Column("tenant", login_string(LIMITS["tenant"]), nullable=False, server_default=""),
    sa.Column("username", login_string(LIMITS["username"]), nullable=True),
    sa.Column("backend", sa.String(LIMITS["backend"]), nullable=True),
    sa.Column("client_addr", sa.String(LIMITS["client_addr"]), nullable=True),
    sa.Column("family", sa.String(LIMITS["family"]), nullable=True),
    sa.Column("version", sa.String(LIMITS["version"]), nullable=True),
    sa.Column("account_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.String(LIMITS["detail"]), nullable=True),
    # The console's "recent logins of this user" and the purge; the cursor orders by (at, id).
    sa.Index("ix_zengine_audit_events_user", "tenant", "username", "at", "id"),
    sa.Index("ix_zengine_audit_events_at", "at", "id"),
    mysql_charset="utf8mb4",
)
