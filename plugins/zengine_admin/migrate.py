"""The API key store's packaged Alembic scripts (:class:`zengine.migrate.Migrations`)."""

from __future__ import annotations

from zengine.migrate import Migrations
from zengine_admin.schema import VERSION_TABLE

MIGRATIONS = Migrations("zengine_admin:migrations", VERSION_TABLE)

upgrade = MIGRATIONS.upgrade
current = MIGRATIONS.current
head = MIGRATIONS.head
ensure_current = MIGRATIONS.ensure_current
