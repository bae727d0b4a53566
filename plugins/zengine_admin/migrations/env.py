"""Alembic environment: online only, on the connection :mod:`zengine.migrate` hands over."""

from __future__ import annotations

from zengine.migrate import run_environment
from zengine_admin.schema import METADATA, VERSION_TABLE

run_environment(METADATA, VERSION_TABLE, "zengine admin")
