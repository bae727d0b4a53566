"""The ``[plugins.audit]`` table: where audit events are kept, for how long, how they are
written."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PLUGIN_NAME = "audit"


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``off``: events are log lines only (``zengine.audit``). ``auto``: also rows in the SQL
    #: backend's database when ``[plugins.sql]`` is configured, else in the embedded SQLite
    #: file; ``sql`` or ``sqlite`` to choose.
    store: Literal["off", "auto", "sql", "sqlite"] = "off"
    #: The embedded SQLite file (created 0600), relative to the config file.
    sqlite_path: Path = Path("zengine-audit.db")
    #: Rows older than this many days are deleted at startup and every ``purge_interval``.
    keep_days: int = Field(90, ge=1, le=3650)
    #: Seconds between purges.
    purge_interval: float = Field(3600.0, ge=10.0, le=86400.0)
    #: Events waiting for the writer thread, at most; beyond that new events are dropped and
    #: counted (``audit.store_dropped``), so a slow database never blocks a login.
    queue_size: int = Field(10000, ge=10, le=1_000_000)
    #: Rows per INSERT.
    batch_size: int = Field(500, ge=1, le=5000)
    #: Seconds the writer waits for more events before writing what it has.
    flush_interval: float = Field(0.5, ge=0.01, le=60.0)
    #: Keep the ``zengine.audit`` log lines too (the store is not a replacement for a log
    #: shipper).
    log: bool = True
