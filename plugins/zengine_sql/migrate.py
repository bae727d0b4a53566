"""Run the packaged Alembic scripts programmatically: no alembic.ini at runtime."""

from __future__ import annotations

from zengine.migrate import Migrations
from zengine_sql.schema import VERSION_TABLE

SCRIPT_LOCATION = "zengine_sql:migrations"
MIGRATIONS = Migrations(SCRIPT_LOCATION, VERSION_TABLE)

alembic_config = MIGRATIONS.config
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
current = MIGRATIONS.current
head = MIGRATIONS.head
