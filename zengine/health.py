"""Health checks: ``/livez`` (the process answers), ``/readyz`` (every backend can serve),
``/healthz`` (an alias of ``/livez``, kept for existing load balancers).

Readiness runs every plugin's :func:`~zengine.hookspecs.zengine_readiness` probe in a worker
thread, at most once per ``[server] readiness_cache_seconds``: a load balancer polling every
second must not turn into a connection storm against the database or the directory.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from zengine.models import Readiness
from zengine.runtime import Runtime

HEALTH_PATHS = ("/livez", "/readyz", "/healthz")
NO_STORE = {"Cache-Control": "no-store"}
log = structlog.get_logger("zengine.health")


class ReadinessCache:
    """The last probe results, refreshed by one caller at a time once they are too old."""

    def __init__(self, runtime: Runtime, ttl: float) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self._results: list[Readiness] | None = None
        self._taken = 0.0
        self._lock = asyncio.Lock()

    async def results(self) -> list[Readiness]:
        if self._results is not None and time.monotonic() - self._taken < self.ttl:
            return self._results
        async with self._lock:
            # Someone else may have refreshed while this request waited for the lock.
            if self._results is None or time.monotonic() - self._taken >= self.ttl:
                results = await run_in_threadpool(self.runtime.hooks.readiness, self.runtime)
                for item in results:
                    if not item.ready:
                        log.warning("readiness.not_ready", backend=item.backend,
                                    reason=item.reason, detail=item.detail)
                self._results, self._taken = results, time.monotonic()
            return self._results


def body(results: list[Readiness]) -> dict[str, object]:
    """What ``/readyz`` shows: the backend names and short reasons, never ``detail``."""
    return {"ready": all(item.ready for item in results),
            "backends": [{"backend": item.backend, "ready": item.ready,
                          **({"reason": item.reason} if not item.ready else {})}
                         for item in results]}


def routes(runtime: Runtime) -> list[BaseRoute]:
    cache = ReadinessCache(runtime, runtime.settings.server.readiness_cache_seconds)

    async def livez(_request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=NO_STORE)

    async def readyz(_request: Request) -> Response:
        results = await cache.results()
        content = body(results)
        return JSONResponse(content, status_code=200 if content["ready"] else 503,
                            headers=NO_STORE)

    return [Route("/livez", livez, methods=["GET"]),
            Route("/healthz", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"])]
