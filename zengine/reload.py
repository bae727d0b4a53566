"""Reload without downtime (one process): ``SIGHUP`` builds a new app from the config file, and
the users file it names, then swaps it in.

Requests already running finish on the app they started on; new ones go to the new app; the old
app's plugins shut down once its last request is done. A config that does not load or start
keeps the running app and logs ``zengine.reload_failed`` with the reason (configuration errors
never quote secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
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

    def __init__(self, app: Starlette, build: Callable[[], Starlette]) -> None:
        self.app = app
        self.build = build
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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                async with self._lock:
                    if self._lifespan is not None:
                        await self._lifespan.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def reload(self) -> bool:
        """Build, start and swap in a new app; ``False`` (old app kept) when that fails."""
        async with self._lock:
            try:
                new = await run_in_threadpool(self.build)
                lifespan = new.router.lifespan_context(new)
                await lifespan.__aenter__()
            except ConfigError as exc:
                log.error("zengine.reload_failed", reason=str(exc))
                return False
            except Exception as exc:
                # Not a ConfigError: its message may quote anything; the type says enough.
                log.error("zengine.reload_failed", reason=type(exc).__name__)
                return False
            old, old_lifespan = self.app, self._lifespan
            self._running[id(new)] = 0
            self.app, self._lifespan = new, lifespan
            log.info("zengine.reloaded")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DRAIN_SECONDS
            while self._running.get(id(old), 0) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            self._running.pop(id(old), None)
            if old_lifespan is not None:
                await old_lifespan.__aexit__(None, None, None)
            return True
