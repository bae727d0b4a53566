"""Initial schema: tenants, users, SIP accounts.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _login(length: int) -> sa.types.TypeEngine[str]:
    # Byte-exact logins on MariaDB/MySQL too (see zengine_sql.schema.login_string).
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "zengine_tenants",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", _login(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_zengine_tenants"),
        sa.UniqueConstraint("name", name="uq_zengine_tenants_name"),
    )
    op.create_table(
        "zengine_users",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=True),
        sa.Column("username", _login(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("profile", sa.String(64), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("overrides", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_zengine_users"),
        sa.ForeignKeyConstraint(["tenant_id"], ["zengine_tenants.id"],
                                name="fk_zengine_users_tenant_id_zengine_tenants"),
        sa.UniqueConstraint("username", name="uq_zengine_users_username"),
    )
    op.create_index("ix_zengine_users_tenant_id", "zengine_users", ["tenant_id"])
    op.create_table(
        "zengine_sip_accounts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("ident", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sip_username", sa.String(255), nullable=False),
        sa.Column("sip_password", sa.String(512), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("auth_username", sa.String(255), nullable=True),
        sa.Column("caller_id", sa.String(255), nullable=True),
        sa.Column("outbound_proxy", sa.String(255), nullable=True),
        sa.Column("transport", sa.String(16), nullable=True),
        sa.Column("profile", sa.String(64), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("overrides", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_zengine_sip_accounts"),
        sa.ForeignKeyConstraint(["user_id"], ["zengine_users.id"], ondelete="CASCADE",
                                name="fk_zengine_sip_accounts_user_id_zengine_users"),
        sa.UniqueConstraint("user_id", "ident", name="uq_zengine_sip_accounts_user_ident"),
    )
    op.create_index("ix_zengine_sip_accounts_user_id", "zengine_sip_accounts", ["user_id"])
    op.create_index("ix_zengine_sip_accounts_key_id", "zengine_sip_accounts", ["key_id"])


def downgrade() -> None:
    op.drop_table("zengine_sip_accounts")
    op.drop_table("zengine_users")
    op.drop_table("zengine_tenants")
