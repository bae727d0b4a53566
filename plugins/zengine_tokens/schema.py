"""The token table. Its own metadata and Alembic version table, so it lives beside the SQL
backend's schema (or a PBX's tables) without touching them."""

from __future__ import annotations

import sqlalchemy as sa

from zengine.sqltypes import UtcDateTime, login_string

VERSION_TABLE = "zengine_tokens_alembic_version"
TABLE_NAME = "zengine_tokens"

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
    #: The user's own tenant when issued (``""``: untenanted); the endpoint refuses the token
    #: for a user of that name in another tenant. NULL: issued before revision t0002.
    sa.Column("user_tenant", login_string(64), nullable=True),
    sa.Index("ix_zengine_tokens_user", "tenant", "username"),
    sa.Index("ix_zengine_tokens_expires_at", "expires_at"),
)
