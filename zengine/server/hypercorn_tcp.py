"""hypercorn's asyncio connection, with its two timeouts kept by one timer each per connection.

hypercorn waits for each read with ``asyncio.wait_for(reader.read(...), read_timeout)``: a task,
a waiter future, a timer and three more event-loop callbacks for every read, that is for every
request a keep-alive client sends. Its keep-alive timeout is a task per idle spell that waits
with ``wait_for`` too (two tasks and a timer made and cancelled per request: 11% of a warm
login's instructions, docs/benchmarks.md). :class:`ZengineTCPServer` keeps the same rules with
deadlines that each read, and each response, moves, and timers that are only set again when
they fire before their deadline:

- each read may wait at most ``read_timeout`` seconds; then the connection ends as after
  hypercorn's timeout (zengine's HTTP layer answers a half-sent request with a 408);
- a connection idle (no request under way) for ``keep_alive_timeout`` is closed, and so is
  every idle one at once when the worker stops (hypercorn's ``terminated`` event; one task per
  worker waits for it, not one per connection).

:func:`install` makes hypercorn's asyncio worker build this class; like the rest of
:mod:`zengine.http_layer`, ``tests/test_http_layer.py`` drives it over raw sockets.
"""

from __future__ import annotations

import asyncio
import weakref
from ssl import SSLError
from typing import Any

import h11
import hypercorn.asyncio.run
from hypercorn.asyncio.tcp_server import MAX_RECV, TCPServer
from hypercorn.events import Closed, RawData


class ZengineTCPServer(TCPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_alive = KeepAlive(self)
        # In hypercorn's place (the same two methods): run(), protocol_send() and _close()
        # restart and stop it.
        self.idle_task = self._keep_alive  # type: ignore[assignment]

    async def _close(self) -> None:
        # First: the close may wait (a TLS close for the client's close_notify, a full send
        # buffer) after the connection's task group has finished, where the timer firing
        # cannot spawn hypercorn's close any more (RuntimeError in a loop callback).
        self._keep_alive.close()
        await super()._close()

    async def _read_data(self) -> None:
        timeout = self.config.read_timeout
        task = asyncio.current_task()
        if timeout is None or task is None:
            await super()._read_data()
            return
        reader = self.reader
        deadline = ReadDeadline(self.loop, timeout, task, getattr(self, "_keep_alive", None))
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
    per ``timeout`` seconds instead of one per request.

    With the connection's ``keep_alive``, silence is only counted while the client owes the
    server something: not while its request is being answered (from its head to the end of
    the response: a slow backend is not a silent client, and its answer would be lost), and
    from the end of the last response rather than from the start of the read. A request's
    head and body are the client's to send: its silence there counts as before."""

    __slots__ = ("_deadline", "_expired", "_handle", "_keep_alive", "_loop", "_reading",
                 "_task", "_timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float,
                 task: asyncio.Task[Any], keep_alive: KeepAlive | None = None) -> None:
        self._loop = loop
        self._timeout = timeout
        self._task = task
        self._keep_alive = keep_alive
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
        now = self._loop.time()
        keep_alive = self._keep_alive
        if keep_alive is not None:
            # Read only when the timer fires (once per timeout at most), nothing per request.
            if keep_alive.answering():
                self._deadline = now + self._timeout
            else:
                self._deadline = max(self._deadline, keep_alive.idle_since() + self._timeout)
        if now < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._expired = True
        self._task.cancel()


class KeepAlive:
    """hypercorn's idle task (``restart``: idle from now; ``stop``: a request under way), from
    one timer per connection that a response moves instead of resetting."""

    __slots__ = ("__weakref__", "_closed", "_connections", "_deadline", "_handle", "_idle",
                 "_loop", "_server", "_terminated", "_timeout")

    def __init__(self, server: TCPServer) -> None:
        self._server = server
        self._loop: asyncio.AbstractEventLoop = server.loop
        self._timeout: float = server.config.keep_alive_timeout
        self._terminated = server.context.terminated
        self._idle = False
        self._closed = False
        self._deadline = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._connections = _idle_at_termination(server.context, self._loop)
        self._connections.add(self)

    async def restart(self, task_group: Any, action: Any) -> None:
        if self._closed:
            return
        self._idle = True
        if self._terminated.is_set():
            self._close_connection()  # the worker is stopping: as hypercorn, at once
            return
        self._deadline = self._loop.time() + self._timeout
        if self._handle is None:
            self._handle = self._loop.call_at(self._deadline, self._fire)

    async def stop(self) -> None:
        self._idle = False

    def answering(self) -> bool:
        """A request is being answered: all of it is in (HTTP/1.1; on HTTP/2 its head, its
        stream's body having ``body_timeout``), its response not yet all sent. Read only when
        a read deadline fires."""
        if self._idle or self._closed:
            return False
        # hypercorn's ProtocolWrapper -> H11Protocol -> h11.Connection: a body still coming
        # is the client's to send, and its silence counts (a 408 at read_timeout).
        connection = getattr(getattr(self._server.protocol, "protocol", None), "connection",
                             None)
        return getattr(connection, "their_state", None) is not h11.SEND_BODY

    def idle_since(self) -> float:
        """When the connection last became idle (its start, or the end of a response)."""
        return self._deadline - self._timeout

    def close(self) -> None:
        """The connection is closed: nothing more to time."""
        self._closed = True
        self._idle = False
        self._connections.discard(self)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def terminated(self) -> None:
        if self._idle:
            self._close_connection()

    def _fire(self) -> None:
        self._handle = None
        if not self._idle or self._closed:
            return  # the next restart sets the timer again
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._close_connection()

    def _close_connection(self) -> None:
        self._idle = False
        self._closed = True
        # In the connection's task group, as hypercorn's idle task: run() waits for it.
        self._server._task_group.spawn(self._server._initiate_server_close)


#: Each worker's connections, for the one task that closes the idle ones when it stops.
_WORKERS: weakref.WeakKeyDictionary[Any, weakref.WeakSet[KeepAlive]] = (
    weakref.WeakKeyDictionary())
_WATCHERS: set[asyncio.Task[None]] = set()


def _idle_at_termination(context: Any, loop: asyncio.AbstractEventLoop,
                         ) -> weakref.WeakSet[KeepAlive]:
    connections = _WORKERS.get(context)
    if connections is None:
        connections = _WORKERS[context] = weakref.WeakSet()
        task = loop.create_task(_close_idle(context.terminated, connections))
        _WATCHERS.add(task)
        task.add_done_callback(_WATCHERS.discard)
    return connections


async def _close_idle(terminated: Any, connections: weakref.WeakSet[KeepAlive]) -> None:
    await terminated.wait()
    for keep_alive in list(connections):
        keep_alive.terminated()


def install() -> None:
    """Make hypercorn's asyncio worker serve connections with :class:`ZengineTCPServer`.
    Idempotent; called when a server starts (in each worker process)."""
    module: Any = hypercorn.asyncio.run
    if getattr(module, "TCPServer", None) is TCPServer:
        module.TCPServer = ZengineTCPServer
