"""The background writer: the request path appends to a bounded queue and returns; one thread
per process writes the queue to the store in batches and purges old rows.

When the queue is full (the database is slow or down and ``queue_size`` events wait), a new
event is dropped and counted, and ``audit.store_dropped`` is logged at error level (at most
every 10 s, with the running count): a login never waits for the audit store. The log line
of the event (``zengine.audit``) is written either way.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from zengine.errors import BackendUnavailable
from zengine.models import AuditEvent
from zengine_audit.settings import AuditSettings
from zengine_audit.store import AuditStore, clean

log = structlog.get_logger("zengine.audit")

#: Seconds between two ``audit.store_dropped`` / ``audit.store_failed`` lines at most.
WARN_EVERY = 10.0
#: Longest wait between two attempts while the database is down.
MAX_BACKOFF = 30.0
_TEXT = ("event", "outcome", "username", "backend", "client_addr", "family", "version",
         "detail")


def to_row(at: float, event: AuditEvent) -> dict[str, Any]:
    row: dict[str, Any] = {name: clean(getattr(event, name), name) for name in _TEXT}
    row["event"] = row["event"] or ""
    row["outcome"] = row["outcome"] or ""
    row["tenant"] = clean(event.tenant or "", "tenant")
    row["account_count"] = int(event.account_count or 0)
    row["at"] = datetime.fromtimestamp(at, UTC)
    return row


class AuditWriter:
    def __init__(self, open_store: Callable[[], AuditStore], config: AuditSettings) -> None:
        self._open_store = open_store
        self._config = config
        self._queue: collections.deque[tuple[float, AuditEvent]] = collections.deque()
        self._pending: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_drop_log = -WARN_EVERY
        self._last_fail_log = -WARN_EVERY
        self._next_purge = 0.0
        #: Events taken from the queue and written (only the writer thread changes it).
        self._done = 0
        #: Events dropped because the queue was full or the store failed at shutdown.
        self.dropped = 0
        #: Rows written since start.
        self.written = 0
        #: Rows deleted by purges since start.
        self.purged = 0
        #: The last write or purge error (the driver's first line, no URL), ``""`` once one
        #: succeeds again.
        self.last_error = ""

    # -- the request path ------------------------------------------------------------------
    def submit(self, event: AuditEvent) -> bool:
        """Queue ``event``; ``False`` when it was dropped. Never blocks, never raises."""
        # len() then append is not atomic: concurrent requests may overshoot the bound by a
        # few events, which is harmless; a lock here would be on every request.
        if len(self._queue) >= self._config.queue_size:
            self._dropped(1, "queue full")
            return False
        self._queue.append((time.time(), event))
        if len(self._queue) >= self._config.batch_size:
            self._wake.set()
        return True

    def _dropped(self, count: int, reason: str) -> None:
        with self._lock:
            self.dropped += count
            now = time.monotonic()
            if now - self._last_drop_log < WARN_EVERY:
                return
            self._last_drop_log = now
            total = self.dropped
        log.error("audit.store_dropped", reason=reason, dropped_total=total,
                  queue_size=self._config.queue_size)

    # -- the thread --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="zengine-audit-writer",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            # Still writing (a slow database): it is a daemon thread and ends with the
            # process; what it has not written by then is lost, and said so.
            log.error("audit.store_dropped", reason="not written at shutdown",
                      queued=self.queued)
            return
        left = len(self._queue) + len(self._pending)
        if left:
            self._queue.clear()
            self._pending = []
            self._dropped(left, "not written at shutdown")

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._pending)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued before the call is written (not those queued
        meanwhile: a busy server's queue is never empty); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        # An event being moved from the queue to the batch is in both for an instant (see
        # _write_all), so this target is never below what was queued before the call.
        target = self._done + len(self._pending) + len(self._queue)
        self._wake.set()
        while self._done < target:
            if time.monotonic() > deadline or self._thread is None:
                return False
            time.sleep(0.005)
            self._wake.set()
        return True

    def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stop.is_set()
            ok = self._write_all()
            if ok and not stopping and time.monotonic() >= self._next_purge:
                ok = self._purge()
            if stopping:
                return
            failures = 0 if ok else failures + 1
            wait = (self._config.flush_interval if ok
                    else min(MAX_BACKOFF, self._config.flush_interval * 2 ** failures))
            self._wake.wait(wait)
            self._wake.clear()

    def _write_all(self) -> bool:
        batch = self._config.batch_size
        # At most a full queue's worth per call: under sustained load the loop still gets
        # back to the purge and to a stop request.
        for _ in range(self._config.queue_size // batch + 1):
            # A failed batch stays in _pending and goes first next time, so the queue's
            # bound is the only memory spent while the database is down.
            while len(self._pending) < batch and self._queue:
                at, event = self._queue[0]
                self._pending.append(to_row(at, event))
                self._queue.popleft()
            if not self._pending:
                return True
            try:
                self._open_store().insert_many(self._pending)
            except Exception as exc:
                self._failed("write", exc)
                return False
            self.written += len(self._pending)
            self._done += len(self._pending)
            self._pending = []
            self.last_error = ""
        return True

    def _purge(self) -> bool:
        cutoff = datetime.now(UTC) - timedelta(days=self._config.keep_days)
        try:
            deleted, more = self._open_store().purge(cutoff)
        except Exception as exc:
            self._failed("purge", exc)
            return False
        self.purged += deleted
        if deleted:
            log.info("audit.store_purged", deleted=deleted, keep_days=self._config.keep_days,
                     more=more)
        # A pass that hit its bound comes back soon, between writes, instead of in an hour.
        self._next_purge = time.monotonic() + (self._config.flush_interval if more
                                               else self._config.purge_interval)
        return True

    def _failed(self, what: str, exc: Exception) -> None:
        if isinstance(exc, BackendUnavailable):
            message = exc.detail
        else:
            orig = getattr(exc, "orig", None) or exc
            message = (f"{type(orig).__name__}: "
                       f"{(str(orig).strip().splitlines() or [''])[0][:200]}")
        self.last_error = message
        now = time.monotonic()
        if now - self._last_fail_log >= WARN_EVERY:
            self._last_fail_log = now
            log.error("audit.store_failed", step=what, error=message, queued=self.queued)
