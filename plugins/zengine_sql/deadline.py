"""Bounded time and bounded capacity for every database operation on the request path.

Drivers cannot be trusted to give up: psycopg has no client-side read timeout, and
``statement_timeout`` runs on the server, so a stopped server (SIGSTOP) or a middlebox that
stops forwarding holds a worker thread for ever. Here each operation

- first passes a **gate**: at most ``pool_size + max_overflow`` operations run and as many
  wait (up to ``pool_timeout``); beyond that the login gets a 503 at once, so a hung database
  holds a bounded number of worker threads and requests that never touch it keep flowing;
- gets a **deadline** (``statement_timeout`` seconds): a watchdog thread shuts down the socket
  of a connection still busy past it (``sqlite3``: ``interrupt()``), the driver raises, the
  connection is invalidated and the request gets a 503;
- **pings** the connection it checked out, under that deadline (SQLAlchemy's own
  ``pool_pre_ping`` runs before any hook could watch it), and retries once on a fresh
  connection when the pooled one turns out dead, so the first request after an outage works.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from zengine.errors import BackendUnavailable

log = structlog.get_logger("zengine.sql")
#: How often the watchdog looks for operations past their deadline.
TICK = 0.05


class Watchdog:
    def __init__(self, engine: Engine, *, capacity: int, wait: float, deadline: float) -> None:
        self.engine = engine
        self.capacity = capacity
        self.wait = wait
        self.deadline = deadline
        self._slots = threading.BoundedSemaphore(capacity)
        self._lock = threading.Lock()
        self._waiting = 0
        self._ops: dict[int, tuple[float, list[Any]]] = {}
        self._cut_ops: set[int] = set()
        self._ids = itertools.count()
        self._local = threading.local()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        sa.event.listen(engine, "checkout", self._on_checkout)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="zengine-sql-watchdog",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _on_checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        op = getattr(self._local, "op", None)
        if op is not None:
            with self._lock:
                entry = self._ops.get(op)
                if entry is not None:
                    entry[1].append(dbapi_connection)

    def _watch(self) -> None:
        while not self._stop.wait(TICK):
            now = time.monotonic()
            with self._lock:
                late = []
                for op, (deadline, conns) in self._ops.items():
                    if deadline <= now and conns:
                        late.extend(conns)
                        conns.clear()  # cut once
                        self._cut_ops.add(op)
            for conn in late:
                log.warning("sql.deadline_cut", deadline_s=self.deadline)
                _cut(conn)

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        with self._lock:
            if self._waiting >= self.capacity:
                raise BackendUnavailable(
                    f"sql: {self.capacity} operations running and {self._waiting} waiting; "
                    "the database is slow or hung")
            self._waiting += 1
        try:
            acquired = self._slots.acquire(timeout=self.wait)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise BackendUnavailable(f"sql: no free database slot within {self.wait:g} s")
        try:
            yield
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def _watched(self) -> Iterator[None]:
        op = next(self._ids)
        with self._lock:
            self._ops[op] = (time.monotonic() + self.deadline, [])
        self._local.op = op
        try:
            yield
        finally:
            self._local.op = None
            with self._lock:
                del self._ops[op]
                self._cut_ops.discard(op)

    @contextlib.contextmanager
    def connection(self, *, begin: bool = False) -> Iterator[Connection]:
        """A pinged connection (in a transaction with ``begin``), inside the gate and under
        the deadline. Database errors propagate as SQLAlchemy raises them."""
        with self._slot(), self._watched():
            conn = self._pinged()
            try:
                if begin:
                    with conn.begin():
                        yield conn
                else:
                    yield conn
            finally:
                conn.close()


    def _pinged(self) -> Connection:
        for attempt in (1, 2):
            began = time.monotonic()
            conn = self.engine.connect()
            try:
                conn.exec_driver_sql("SELECT 1").close()
                conn.rollback()
                return conn
            except sa.exc.DBAPIError as exc:
                conn.close()
                # A pooled connection the database dropped fails at once: once more on a
                # fresh one. Not when it failed slowly or was cut at the deadline (the
                # database is hung, not restarted).
                with self._lock:
                    was_cut = self._local.op in self._cut_ops
                slow = time.monotonic() - began > min(1.0, self.deadline / 2)
                if not exc.connection_invalidated or attempt == 2 or was_cut or slow:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _cut(dbapi_connection: Any) -> None:
    """Make a connection stuck in the driver fail now, from another thread."""
    with contextlib.suppress(Exception):
        pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
        if pgconn is not None:
            _shutdown_fd(pgconn.socket)
            return
    with contextlib.suppress(Exception):
        sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            return
    with contextlib.suppress(Exception):
        interrupt = getattr(dbapi_connection, "interrupt", None)  # sqlite3
        if callable(interrupt):
            interrupt()


def _shutdown_fd(fd: int) -> None:
    # A duplicate descriptor of the same socket: shutting it down ends the driver's wait.
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()
