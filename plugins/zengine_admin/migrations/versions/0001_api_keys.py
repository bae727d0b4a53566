"""API key table.

Revision ID: a0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "a0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _login(length: int) -> sa.types.TypeEngine[str]:
    # Byte-exact on MariaDB/MySQL too (see zengine_tokens.schema.login_string).
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "zengine_api_keys",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("name", _login(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("tenant", _login(64), nullable=True),
        sa.Column("allow", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_addr", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_zengine_api_keys"),
        sa.UniqueConstraint("name", name="uq_zengine_api_keys_name"),
    )


def downgrade() -> None:
    op.drop_table("zengine_api_keys")
