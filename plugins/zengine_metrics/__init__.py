"""Prometheus metrics (``[plugins.metrics]``, off by default): ``/metrics`` behind an
allow-list on the main listener, or on a listener of its own; multiprocess mode for several
workers. Fed only by the core's observation hooks (``zengine_request_finished``,
``zengine_observe``) and audit events; see docs/metrics.md for every metric.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from zengine import hookimpl
from zengine.addresses import ClientAddresses
from zengine.models import AuditEvent, Observation, PluginSettingsSpec, RequestSummary
from zengine.runtime import Runtime
from zengine_metrics.settings import MetricsSettings

NAME = "metrics"
LISTENER = f"{NAME}.listener"
#: Set while an app is built (``zengine_register_routes``): only a serving runtime counts.
SERVING = f"{NAME}.serving"

__all__ = ["NAME", "MetricsSettings"]


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, MetricsSettings)


def _metrics(runtime: Runtime) -> Any:
    # One set of metrics per process, owned by the global runtime: a tenant's runtime
    # reports into it (its tenant becomes a label), so one scrape sees every tenant.
    return (runtime.root or runtime).state.get(NAME)


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, MetricsSettings)
    # A CLI command (check-config, users, lockouts) starts a runtime without an app: it must
    # not bind the listener nor add a "worker" to the running server's counts.
    if not config.enabled or runtime.root is not None or not runtime.state.get(SERVING):
        return
    # prometheus-client is imported only when metrics are on.
    from zengine_metrics.metrics import Metrics

    metrics = runtime.state[NAME] = Metrics(config, runtime.settings.server.workers,
                                            runtime.tenants)
    if config.listen is not None:
        from zengine_metrics.listener import Listener

        runtime.state[LISTENER] = Listener(config, metrics.exposition)


@hookimpl
def zengine_shutdown(runtime: Runtime) -> None:
    listener = runtime.state.pop(LISTENER, None)
    if listener is not None:
        listener.close()
    metrics = runtime.state.pop(NAME, None)
    if metrics is not None:
        metrics.close()


@hookimpl
def zengine_register_routes(runtime: Runtime) -> list[BaseRoute] | None:
    config = runtime.config(NAME, MetricsSettings)
    if not config.enabled:
        return None
    runtime.state[SERVING] = True
    if config.listen is not None:
        # With a listener of its own the path is not on the main listener at all (404).
        return None
    from zengine_metrics.listener import allowed

    networks = config.networks()
    addresses = ClientAddresses(runtime.settings.server.trusted_proxies)

    async def scrape(request: Request) -> Response:
        # The real client: a request forwarded by a trusted proxy is judged by who sent it.
        client = addresses.resolve(request.client.host if request.client else "",
                                   request.headers)
        metrics = _metrics(runtime)
        if not allowed(client, networks):
            return PlainTextResponse("forbidden: not in [plugins.metrics] allow\n", 403)
        if metrics is None:
            return PlainTextResponse("metrics are starting\n", 503)
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        # Multiprocess mode reads every worker's file: not on the event loop.
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route(config.path, scrape, methods=["GET"])]


@hookimpl
def zengine_request_finished(summary: RequestSummary, runtime: Runtime) -> None:
    metrics = _metrics(runtime)
    if metrics is not None:
        metrics.request(summary)


@hookimpl
def zengine_observe(observation: Observation, runtime: Runtime) -> None:
    metrics = _metrics(runtime)
    if metrics is not None:
        metrics.observe(observation, runtime.tenant)


@hookimpl
def zengine_audit(event: AuditEvent, runtime: Runtime) -> None:
    metrics = _metrics(runtime)
    if metrics is not None:
        metrics.audit(event)


@hookimpl
def zengine_inline_safe() -> bool:
    # A counter increment in memory (multiprocess mode: a value in a memory-mapped file),
    # already done on the event loop for every zengine_request_finished.
    return True
