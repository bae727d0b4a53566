"""hypercorn's asyncio connection, with ``read_timeout`` kept by one timer per connection.

hypercorn waits for each read with ``asyncio.wait_for(reader.read(...), read_timeout)``: a task,
a waiter future, a timer and three more event-loop callbacks for every read, that is for every
request a keep-alive client sends (about 10% of the event loop's time on a warm login,
profiled: docs/benchmarks.md). :class:`ZengineTCPServer` keeps the same rule (each read may wait
at most ``read_timeout`` seconds; then the connection ends as after hypercorn's timeout, and
zengine's HTTP layer answers a half-sent request with a 408) with a deadline that each read
moves and one timer that is only set again when it fires before the deadline.

:func:`install` makes hypercorn's asyncio worker build this class; like the rest of
:mod:`zengine.http_layer`, ``tests/test_http_layer.py`` drives it over raw sockets.
"""

from __future__ import annotations

import asyncio
from ssl import SSLError
from typing import Any

import hypercorn.asyncio.run
from hypercorn.asyncio.tcp_server import MAX_RECV, TCPServer
from hypercorn.events import Closed, RawData


class ZengineTCPServer(TCPServer):
    async def _read_data(self) -> None:
        timeout = self.config.read_timeout
        task = asyncio.current_task()
        if timeout is None or task is None:
            await super()._read_data()
            return
        reader = self.reader
        deadline = ReadDeadline(self.loop, timeout, task)
        try:
            while not reader.at_eof():
                deadline.start()
                try:
                    data = await reader.read(MAX_RECV)
                except asyncio.CancelledError:
                    if deadline.expired():
                        break  # silent for read_timeout: as hypercorn's TimeoutError
                    raise
                except (ConnectionError, OSError, SSLError):
                    break
                deadline.stop()
                await self.protocol.handle(RawData(data))
        finally:
            deadline.close()
        await self.protocol.handle(Closed())
        # Nothing more to read: the keep-alive timer need not hold the connection open (it
        # kept a half-sent request's socket for keep_alive_timeout after its 408).
        await self.idle_task.stop()


class ReadDeadline:
    """At most ``timeout`` seconds for each read between :meth:`start` and :meth:`stop`, else
    ``task`` is cancelled (:meth:`expired` then says it was this deadline).

    A read moves the deadline, it does not set a timer: the one timer fires at the deadline it
    was set for and, finding the deadline moved on (or no read waiting), is set again for the
    new one (or left unset until the next read). A busy keep-alive connection sets one timer
    per ``timeout`` seconds instead of one per request."""

    __slots__ = ("_deadline", "_expired", "_handle", "_loop", "_reading", "_task", "_timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float,
                 task: asyncio.Task[Any]) -> None:
        self._loop = loop
        self._timeout = timeout
        self._task = task
        self._deadline = 0.0
        self._reading = False
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._deadline = self._loop.time() + self._timeout
        self._reading = True
        if self._handle is None:
            self._handle = self._loop.call_at(self._deadline, self._fire)

    def stop(self) -> None:
        self._reading = False

    def close(self) -> None:
        self._reading = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def expired(self) -> bool:
        """Whether the cancellation being handled is this deadline's alone (as
        ``asyncio.timeout`` decides: anyone else's is passed on)."""
        return self._expired and self._task.uncancel() == 0

    def _fire(self) -> None:
        self._handle = None
        if not self._reading:
            return  # the next read sets the timer again
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._expired = True
        self._task.cancel()


def install() -> None:
    """Make hypercorn's asyncio worker serve connections with :class:`ZengineTCPServer`.
    Idempotent; called when a server starts (in each worker process)."""
    module: Any = hypercorn.asyncio.run
    if getattr(module, "TCPServer", None) is TCPServer:
        module.TCPServer = ZengineTCPServer
