"""The audit store's Python API, for the admin REST API, the console and other plugins.

``audit_service(runtime)`` returns the running :class:`AuditService` (the audit plugin must be
loaded and the runtime started). Its methods:

* ``service.enabled`` — whether events are stored (``[plugins.audit] store`` is not ``off``).
* ``service.query(AuditQuery(...)) -> AuditPage`` — the typed query. Every field of
  :class:`AuditQuery` narrows: ``username``; ``tenant`` (``None`` = every tenant, ``""`` = the
  default one); ``since`` (inclusive) and ``until`` (exclusive), aware datetimes; ``outcomes``
  and ``events``, tuples matching any of their values (an ``events`` value ending in ``*`` is a
  prefix: ``("login.*", "token.*")``); ``limit`` (1 to 500, default 50); ``cursor``. Records come
  newest first (by time, then id) as :class:`AuditRecord`; ``page.next_cursor`` is ``None`` on
  the last page, else the opaque string to pass as ``cursor`` for the next, older page. The
  cursor is a position (time and id of the last row shown), so it is stable: rows written
  since the first page never shift later pages, nothing repeats and nothing is skipped.
  Raises :class:`BadCursor` (a ``ValueError``) for a cursor it did not hand out,
  ``ValueError`` for a bad limit or a naive datetime, :class:`AuditStoreOff` when the store is
  off, :class:`~zengine.errors.BackendUnavailable` when the database cannot be reached.
* ``service.flush(timeout)`` — wait until every event recorded so far is written (a console
  that just cleared a lockout shows it at once).
* ``service.stats()`` — queued, written, dropped, purged, last error.
* ``service.purge()`` — delete rows older than ``keep_days`` now (one bounded pass).

Events are written by one background thread per process in batches (see
:mod:`zengine_audit.writer`), so a row appears up to ``flush_interval`` after the event.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from zengine.errors import BackendUnavailable, ConfigError
from zengine.models import AuditEvent
from zengine_audit.records import AuditPage, AuditQuery, AuditRecord, BadCursor
from zengine_audit.settings import PLUGIN_NAME, AuditSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from zengine.runtime import Runtime
    from zengine_audit.store import AuditStore
    from zengine_audit.writer import AuditWriter

__all__ = ["AuditPage", "AuditQuery", "AuditRecord", "AuditService", "AuditStats",
           "AuditStoreOff", "BadCursor", "audit_service"]


def unavailable_on_error(what: str) -> contextlib.AbstractContextManager[None]:
    # SQLAlchemy, the schema and Alembic (~25 MB per worker) load only when the store is on
    # and first used: with the default store = "off" a server never imports them.
    from zengine.sqltypes import unavailable_on_error

    return unavailable_on_error(what)


class AuditStoreOff(RuntimeError):
    """``[plugins.audit] store = "off"``: events are log lines only, there is nothing to
    query."""


@dataclass(frozen=True)
class AuditStats:
    backend: Literal["sql", "sqlite", "off"]
    queued: int
    written: int
    dropped: int
    purged: int
    last_error: str


class AuditService:
    """The audit store of one process: the writer thread and the query side. Thread-safe."""

    def __init__(self, runtime: Runtime, config: AuditSettings) -> None:
        self.runtime = runtime
        self.config = config
        self._store: AuditStore | None = None
        self._own_engine: Engine | None = None
        self._lock = threading.Lock()
        self._writer: AuditWriter | None = None
        if self.enabled:
            from zengine_audit.writer import AuditWriter

            self._writer = AuditWriter(lambda: self.store, config)

    @property
    def enabled(self) -> bool:
        return self.config.store != "off"

    def _sql_engine(self) -> Engine | None:
        engine = getattr(self.runtime.state.get("sql"), "engine", None)
        if engine is None:
            return None
        from sqlalchemy.engine import Engine  # loaded already: the SQL backend made one

        return engine if isinstance(engine, Engine) else None

    @property
    def backend(self) -> Literal["sql", "sqlite", "off"]:
        if not self.enabled:
            return "off"
        if self.config.store == "sqlite" or self._sql_engine() is None:
            return "sqlite"
        return "sql"

    def same_store(self, other: AuditService) -> bool:
        """Whether ``other`` (a tenant's) would write where this one writes."""
        return (self.config == other.config
                and (self.backend != "sql" or self._sql_engine() is other._sql_engine())
                and (self.backend != "sqlite"
                     or self.runtime.settings.resolve_path(self.config.sqlite_path)
                     == other.runtime.settings.resolve_path(other.config.sqlite_path)))

    def check(self) -> None:
        """Refuse a store choice that cannot work (called at startup)."""
        if self.config.store == "sql" and self._sql_engine() is None:
            raise ConfigError("[plugins.audit] store = \"sql\" needs the sql plugin with "
                              "[plugins.sql] url set")

    @property
    def store(self) -> AuditStore:
        """Opened on first use (in the writer thread, so startup never waits for it), with
        the schema brought to head."""
        if not self.enabled:
            raise AuditStoreOff("[plugins.audit] store is \"off\"")
        with self._lock:
            if self._store is None:
                from zengine.sqltypes import open_sqlite
                from zengine_audit.migrate import MIGRATIONS
                from zengine_audit.store import AuditStore

                engine = self._sql_engine() if self.backend == "sql" else None
                with unavailable_on_error("audit"):
                    if engine is None:
                        path = self.runtime.settings.resolve_path(self.config.sqlite_path)
                        try:
                            engine = self._own_engine = open_sqlite(path, wal=True)
                        except OSError as exc:
                            raise BackendUnavailable(
                                f"audit: cannot open {path}: {exc.strerror}") from None
                    MIGRATIONS.ensure_current(engine)
                self._store = AuditStore(engine)
            return self._store

    def start(self) -> None:
        if self._writer is not None:
            self._writer.start()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        with self._lock:
            if self._own_engine is not None:
                self._own_engine.dispose()
            self._own_engine = None
            self._store = None

    # -- the request path ----------------------------------------------------------------
    def record(self, event: AuditEvent) -> None:
        if self._writer is not None:
            self._writer.submit(event)

    # -- the query side ------------------------------------------------------------------
    def query(self, query: AuditQuery) -> AuditPage:
        store = self.store
        with unavailable_on_error("audit"):
            return store.query(query)

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout) if self._writer is not None else True

    def purge(self) -> int:
        cutoff = datetime.now(UTC) - timedelta(days=self.config.keep_days)
        store = self.store
        with unavailable_on_error("audit"):
            return store.purge(cutoff)[0]

    def count(self) -> int:
        """Rows in the table (tests and ``status``)."""
        import sqlalchemy as sa

        from zengine_audit.schema import EVENTS

        store = self.store
        with unavailable_on_error("audit"), store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(EVENTS))
                       .scalar_one())

    def stats(self) -> AuditStats:
        writer = self._writer
        if writer is None:
            return AuditStats("off", 0, 0, 0, 0, "")
        return AuditStats(self.backend, writer.queued, writer.written, writer.dropped,
                          writer.purged, writer.last_error)


def audit_service(runtime: Runtime) -> AuditService:
    """The running runtime's audit service."""
    service = runtime.state.get(PLUGIN_NAME)
    if not isinstance(service, AuditService):
        raise RuntimeError("the audit plugin is not loaded or not started")
    return service
