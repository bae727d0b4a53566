"""Run the token store's packaged Alembic scripts on a given engine."""

from __future__ import annotations

from zengine.migrate import Migrations
from zengine_tokens.schema import VERSION_TABLE

SCRIPT_LOCATION = "zengine_tokens:migrations"
MIGRATIONS = Migrations(SCRIPT_LOCATION, VERSION_TABLE)

alembic_config = MIGRATIONS.config
upgrade = MIGRATIONS.upgrade
downgrade = MIGRATIONS.downgrade
current = MIGRATIONS.current
head = MIGRATIONS.head
ensure_current = MIGRATIONS.ensure_current
