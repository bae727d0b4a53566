"""Usernames unique per tenant: the same login may exist in two tenants (issue 13).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot drop a constraint in place, so the table is copied there.
    with op.batch_alter_table("zengine_users") as batch:
        batch.drop_constraint("uq_zengine_users_username", type_="unique")
        batch.create_unique_constraint("uq_zengine_users_tenant_id", ["tenant_id", "username"])
        # The login lookup keeps an index of its own.
        batch.create_index("ix_zengine_users_username", ["username"])


def downgrade() -> None:
    # Fails (as it should) while one username exists in two tenants.
    with op.batch_alter_table("zengine_users") as batch:
        batch.drop_index("ix_zengine_users_username")
        batch.drop_constraint("uq_zengine_users_tenant_id", type_="unique")
        batch.create_unique_constraint("uq_zengine_users_username", ["username"])
