"""Token table.

Revision ID: t0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "t0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _login(length: int) -> sa.types.TypeEngine[str]:
    # Byte-exact on MariaDB/MySQL too (see zengine_tokens.schema.login_string).
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "zengine_tokens",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("tenant", _login(64), nullable=False, server_default=""),
        sa.Column("username", _login(255), nullable=False),
        sa.Column("account", _login(128), nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False, server_default="link"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replay_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_addr", sa.String(64), nullable=True),
        sa.Column("issued_by", sa.String(64), nullable=False, server_default="cli"),
        sa.PrimaryKeyConstraint("id", name="pk_zengine_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_zengine_tokens_token_hash"),
    )
    op.create_index("ix_zengine_tokens_user", "zengine_tokens", ["tenant", "username"])
    op.create_index("ix_zengine_tokens_expires_at", "zengine_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_zengine_tokens_expires_at", table_name="zengine_tokens")
    op.drop_index("ix_zengine_tokens_user", table_name="zengine_tokens")
    op.drop_table("zengine_tokens")
