"""Run a plugin's packaged Alembic scripts programmatically: no ``alembic.ini`` at runtime.

Each plugin that owns tables keeps its scripts in a package (``"<plugin>:migrations"``, with an
``env.py`` that reads the connection from ``config.attributes["connection"]``) and its own
version table, so several plugins' schemas live in one database without touching each other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

#: Alembic keeps the running environment in module globals (``alembic.context``): two
#: migrations at once in one process (the audit writer thread opening its store while the
#: token store opens its own) would tear each other's down. One at a time, per process.
_ALEMBIC = threading.RLock()


@dataclass(frozen=True)
class Migrations:
    """One plugin's migrations: ``script_location`` (``"pkg:migrations"``) and its version
    table."""

    script_location: str
    version_table: str

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", self.script_location)
        return config

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        config = self.config()
        with _ALEMBIC, engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    def downgrade(self, engine: Engine, revision: str) -> None:
        config = self.config()
        with _ALEMBIC, engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, revision)

    def current(self, engine: Engine) -> str | None:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn,
                                                 opts={"version_table": self.version_table})
            return context.get_current_revision()

    def head(self) -> str | None:
        return ScriptDirectory.from_config(self.config()).get_current_head()

    def ensure_current(self, engine: Engine) -> None:
        """Bring the schema to head. Several workers may start at once: when one of them lost
        the race and the schema is at head anyway, that is success."""
        target = self.head()
        if self.current(engine) == target:
            return
        try:
            self.upgrade(engine)
        except Exception:
            if self.current(engine) != target:
                raise


def run_environment(target_metadata: MetaData, version_table: str, name: str) -> None:
    """The body of a plugin's ``migrations/env.py``: online only, on the connection
    :class:`Migrations` hands over; SQLite in batch mode (it cannot ALTER most things)."""
    from alembic import context

    if context.is_offline_mode():
        raise RuntimeError(f"{name} migrations run online only")
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
