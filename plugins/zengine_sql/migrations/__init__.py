"""Alembic scripts for zengine's own schema, run by ``zengine db upgrade`` (no alembic.ini)."""
