"""Readiness of the SQL backend: the database answers, and (own schema) is at the packaged head."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from zengine.models import Readiness
from zengine_sql import migrate
from zengine_sql.engine import describe_error
from zengine_sql.settings import PLUGIN_NAME
from zengine_sql.state import SqlState


def probe(state: SqlState) -> Readiness:
    try:
        with state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        if state.mapping is not None:
            # A PBX's tables have no revision of ours; reaching the database is the test.
            return Readiness(PLUGIN_NAME, True)
        current, head = migrate.current(state.engine), migrate.head()
    except sa_exc.SQLAlchemyError as exc:
        return Readiness(PLUGIN_NAME, False, "database unreachable",
                         describe_error(exc, state.url))
    if current != head:
        return Readiness(PLUGIN_NAME, False, "schema not at head",
                         f"schema revision {current or 'none (never migrated)'}, packaged head "
                         f"{head}: run `zengine db upgrade`")
    return Readiness(PLUGIN_NAME, True)
