"""Alembic environment: online only, on the connection :mod:`zengine_admin.migrate` hands over."""

from __future__ import annotations

from alembic import context

from zengine_admin.schema import METADATA, VERSION_TABLE

if context.is_offline_mode():
    raise RuntimeError("zengine admin migrations run online only")

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=METADATA,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
