"""Run a plugin's packaged Alembic scripts programmatically: no ``alembic.ini`` at runtime.

Each plugin that owns tables keeps its scripts in a package (``"<plugin>:migrations"``, with an
``env.py`` that reads the connection from ``config.attributes["connection"]``) and its own
version table, so several plugins' schemas live in one database without touching each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine


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
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    def downgrade(self, engine: Engine, revision: str) -> None:
        config = self.config()
        with engine.begin() as conn:
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
