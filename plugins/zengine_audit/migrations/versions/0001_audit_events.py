"""Audit events table.

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
    # Byte-exact on MariaDB/MySQL too (see zengine.sqltypes.login_string).
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "zengine_audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        # Microseconds on MariaDB too (see zengine.sqltypes.PreciseUtcDateTime).
        sa.Column("at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
                  nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("tenant", _login(64), nullable=False, server_default=""),
        sa.Column("username", _login(255), nullable=True),
        sa.Column("backend", sa.String(64), nullable=True),
        sa.Column("client_addr", sa.String(64), nullable=True),
        sa.Column("family", sa.String(32), nullable=True),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("account_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_zengine_audit_events"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_zengine_audit_events_user", "zengine_audit_events",
                    ["tenant", "username", "at", "id"])
    op.create_index("ix_zengine_audit_events_at", "zengine_audit_events", ["at", "id"])


def downgrade() -> None:
    op.drop_index("ix_zengine_audit_events_at", table_name="zengine_audit_events")
    op.drop_index("ix_zengine_audit_events_user", table_name="zengine_audit_events")
    op.drop_table("zengine_audit_events")
