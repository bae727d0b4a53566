"""Alembic environment: always online, on the connection ``zengine db`` hands over."""

from __future__ import annotations

from alembic import context

from zengine_sql.schema import VERSION_TABLE, metadata

if context.is_offline_mode():
    raise RuntimeError("zengine migrations run online only: use `zengine db upgrade`")

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata(),
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
