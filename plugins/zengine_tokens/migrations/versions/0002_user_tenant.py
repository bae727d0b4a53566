"""The user's own tenant on each token.

A tenant that is only a name on users shares the global runtime, which finds a name several
tenants use as the untenanted user's: the row now says whose token it is, and the endpoint
refuses it for any other user of that name. NULL for rows issued before.

Revision ID: t0002
Revises: t0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "t0002"
down_revision: str | None = "t0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("zengine_tokens") as batch:
        batch.add_column(sa.Column("user_tenant", sa.String(64).with_variant(
            mysql.VARCHAR(64, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"),
            nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("zengine_tokens") as batch:
        batch.drop_column("user_tenant")
