"""The API key table. Its own metadata and Alembic version table, like the token store, so it
lives beside the SQL backend's schema (or a PBX's tables) without touching them."""

from __future__ import annotations

import sqlalchemy as sa

from zengine.sqltypes import UtcDateTime, login_string

VERSION_TABLE = "zengine_admin_alembic_version"
TABLE_NAME = "zengine_api_keys"

METADATA = sa.MetaData()

API_KEYS = sa.Table(
    TABLE_NAME, METADATA,
    #: Public id, also the key's second part (``zk_<id>_<secret>``): a lookup by primary key.
    sa.Column("id", sa.String(16), primary_key=True),
    #: Who the key is: the audit trail's actor. Unique among live and revoked keys alike.
    sa.Column("name", login_string(64), nullable=False, unique=True),
    #: HMAC-SHA256 of the whole key, hex; the key itself is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False),
    #: ``read``, ``tokens`` or ``write``.
    sa.Column("scope", sa.String(16), nullable=False),
    #: The one tenant the key may see; NULL for every tenant.
    sa.Column("tenant", login_string(64), nullable=True),
    #: Comma-separated networks the key may be used from; NULL for anywhere.
    sa.Column("allow", sa.String(1024), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("last_used_addr", sa.String(64), nullable=True),
)
