"""Alembic scripts of the token store."""
