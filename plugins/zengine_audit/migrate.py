"""Run the audit store's packaged Alembic scripts on a given engine."""

from __future__ import annotations

from zengine.migrate import Migrations
from zengine_audit.schema import VERSION_TABLE

MIGRATIONS = Migrations("zengine_audit:migrations", VERSION_TABLE)
