"""Reload without downtime: ``SIGHUP`` builds a new app from the config file, and the users
file it names, then swaps it in, in every worker process.

Each worker reloads itself (:class:`Reloadable` handles ``SIGHUP`` on its event loop), so every
engine and worker count reload the same way: with ``--workers`` above one, the engine's parent
process does nothing but pass ``SIGHUP`` on to its workers (:func:`forward_sighup`); no worker is
restarted, so no connection is closed and a broken config cannot leave the server with fewer
workers.

Requests already running finish on the app they started on; new ones go to the new app; the old
app's plugins shut down once its last request is done. A config that does not load or start
keeps the running app and logs ``zengine.reload_failed`` with the reason (configuration errors
never quote secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from zengine.errors import ConfigError

log = structlog.get_logger("zengine.reload")
#: Longest wait for the old app's requests before its plugins are shut down anyway.
DRAIN_SECONDS = 30.0


class Reloadable:
    """An ASGI app that forwards to the current Starlette app and can replace it."""

    def __init__(self, app: Starlette, build: Callable[[], Starlette], *,
                 sighup: bool = False) -> None:
        self.app = app
        self.build = build
        #: Handle ``SIGHUP`` on the serving event loop (from lifespan startup to shutdown).
        self.sighup = sighup
        self._reloads: set[asyncio.Task[bool]] = set()
        self._running: dict[int, int] = {id(app): 0}
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        app = self.app
        key = id(app)
        self._running[key] = self._running.get(key, 0) + 1
        try:
            await app(scope, receive, send)
        finally:
            if key in self._running:  # else the drain gave up on this app and forgot it
                self._running[key] -= 1

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._lifespan = self.app.router.lifespan_context(self.app)
                    await self._lifespan.__aenter__()
                except Exception as exc:  # the engine prints the failure and exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.sighup:
                    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.sighup:
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                async with self._lock:
                    if self._lifespan is not None:
                        await self._lifespan.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _on_sighup(self) -> None:
        # Kept in a set: the loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Build, start and swap in a new app; ``False`` (old app kept) when that fails."""
        async with self._lock:
            try:
                new = await run_in_threadpool(self.build)
                lifespan = new.router.lifespan_context(new)
                await lifespan.__aenter__()
            except ConfigError as exc:
                log.error("zengine.reload_failed", reason=str(exc), pid=os.getpid())
                return False
            except Exception as exc:
                # Not a ConfigError: its message may quote anything; the type says enough.
                log.error("zengine.reload_failed", reason=type(exc).__name__, pid=os.getpid())
                return False
            old, old_lifespan = self.app, self._lifespan
            self._running[id(new)] = 0
            self.app, self._lifespan = new, lifespan
            log.info("zengine.reloaded", pid=os.getpid())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DRAIN_SECONDS
            while self._running.get(id(old), 0) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            self._running.pop(id(old), None)
            if old_lifespan is not None:
                await old_lifespan.__aexit__(None, None, None)
            return True


def ignore_sighup() -> None:
    """In a worker process, until its app has started: a ``SIGHUP`` that arrives while the
    worker is still importing would otherwise end it (the default action); there is nothing to
    reload yet, the worker is about to read the current config anyway."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


@contextlib.contextmanager
def spawning_ignores_sighup() -> Iterator[None]:
    """Start worker processes inside this: they begin with ``SIGHUP`` ignored (an ignored
    signal survives fork and exec; a handler does not), so one that arrives before the worker's
    app has started neither ends it nor, after a fork, runs the parent's handler in it."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def forward_sighup(workers: Callable[[], Iterable[int]]) -> None:
    """In an engine's parent process: pass ``SIGHUP`` on to every worker (``workers()`` gives
    their process ids) instead of the engine's own reaction, which restarts all of them."""

    def forward(signum: int, frame: object) -> None:
        pids = [pid for pid in workers() if pid]
        log.info("zengine.reload_requested", workers=len(pids))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # a worker that just exited
                os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGHUP, forward)
