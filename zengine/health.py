"""Health checks: ``/livez`` (the process answers), ``/readyz`` (every backend can serve),
``/healthz`` (an alias of ``/livez``, kept for existing load balancers).

Readiness runs every plugin's :func:`~zengine.hookspecs.zengine_readiness` probe in a worker
thread, at most once per ``[server] readiness_cache_seconds``: a load balancer polling every
second must not turn into a connection storm against the database or the directory.

Every runtime is probed: the global one and each configured tenant's (``[tenants.<name>]``
may give a tenant its own database, directory or token store), so one tenant's unreachable
backend is not hidden behind a healthy global one.
"""

from __future__ import annotations

import asyncio
import json
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


#: One probe result and the tenant whose runtime it came from (``""``: the global one).
TenantReadiness = tuple[str, Readiness]


def probe_all(runtime: Runtime) -> list[TenantReadiness]:
    """The probes of the global runtime, then of each configured tenant's, in config order
    (blocking: call it from a worker thread).

    A tenant is probed only for the plugins whose ``[plugins.<name>]`` table is its own (not
    the global one's): a backend it shares with the global runtime is probed once, and its
    failure is the global one's, not listed once per tenant (which would name every customer
    and probe one dead backend tenants + 1 times). Tenants with the same own tables share
    one probe too."""
    top = runtime.root or runtime
    found = [("", item) for item in top.hooks.readiness(top)]
    shared = top.settings.plugin_tables
    probed: dict[str, list[Readiness]] = {}
    for name, tenant in top.tenants.items():
        tables = tenant.settings.plugin_tables
        own = sorted(plugin for plugin in {*tables, *shared}
                     if tables.get(plugin) != shared.get(plugin))
        if not own:
            continue
        key = json.dumps([[plugin, tables.get(plugin)] for plugin in own], sort_keys=True,
                         default=str)
        if key not in probed:
            probed[key] = tenant.hooks.readiness(tenant, only=own)
        found += [(name, item) for item in probed[key]]
    return found


class ReadinessCache:
    """The last probe results, refreshed by one caller at a time once they are too old."""

    def __init__(self, runtime: Runtime, ttl: float) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self._results: list[TenantReadiness] | None = None
        self._taken = 0.0
        self._lock = asyncio.Lock()

    async def results(self) -> list[TenantReadiness]:
        if self._results is not None and time.monotonic() - self._taken < self.ttl:
            return self._results
        async with self._lock:
            # Someone else may have refreshed while this request waited for the lock.
            if self._results is None or time.monotonic() - self._taken >= self.ttl:
                results = await run_in_threadpool(probe_all, self.runtime)
                for tenant, item in results:
                    if not item.ready:
                        log.warning("readiness.not_ready", backend=item.backend,
                                    tenant=tenant or None, reason=item.reason,
                                    detail=item.detail)
                self._results, self._taken = results, time.monotonic()
            return self._results


def body(results: list[TenantReadiness], *, tenants_fail: bool = True) -> dict[str, object]:
    """What ``/readyz`` shows: the backend names and short reasons, never ``detail``.

    The global runtime's backends are all listed; a tenant's only when not ready, with its
    name: that is what the operator must know, and a ready tenant's entries would only
    lengthen the body and list the tenants to whoever can reach it. With ``tenants_fail``
    false (``[server] readiness_tenants = "report"``) a tenant's is listed but leaves
    ``ready`` (and the status) to the global backends.
    """
    return {"ready": all(item.ready for tenant, item in results
                         if tenants_fail or not tenant),
            "backends": [{"backend": item.backend,
                          **({"tenant": tenant} if tenant else {}), "ready": item.ready,
                          **({"reason": item.reason} if not item.ready else {})}
                         for tenant, item in results if not tenant or not item.ready]}


def routes(runtime: Runtime) -> list[BaseRoute]:
    cache = ReadinessCache(runtime, runtime.settings.server.readiness_cache_seconds)
    tenants_fail = runtime.settings.server.readiness_tenants == "fail"

    async def livez(_request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=NO_STORE)

    async def readyz(_request: Request) -> Response:
        results = await cache.results()
        content = body(results, tenants_fail=tenants_fail)
        return JSONResponse(content, status_code=200 if content["ready"] else 503,
                            headers=NO_STORE)

    return [Route("/livez", livez, methods=["GET"]),
            Route("/healthz", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"])]
