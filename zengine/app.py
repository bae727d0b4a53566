"""The Starlette app: routes, lifespan, and the one place errors become responses."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from zengine import doccache, errors, health
from zengine.addresses import ClientAddresses
from zengine.bodies import CLOSE, BodyIncomplete, BodyTimeout, BodyTooLarge, read_body
from zengine.errors import BackendUnavailable, BadRequest, LoginFailed, TooManyAttempts
from zengine.fastpath import PARSED_KEY
from zengine.models import ProvisionRequest, RequestSummary
from zengine.offload import OFFLOAD
from zengine.pipeline import Reply, handle, status_for
from zengine.request import build_request
from zengine.runtime import Runtime, build_runtime
from zengine.settings import ServerSettings, Settings
from zengine.tenancy import SCOPE_KEY, PathKeyMask, keyed_paths, mask_scope
from zengine.web import plugin_routes
from zengine.xmlio import error_document

XML_MEDIA_TYPE = "application/xml; charset=utf-8"
# The body carries SIP passwords: no cache, proxy or browser may keep it.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff"}
log = structlog.get_logger("zengine.app")
#: The raw headers of :func:`_answer`'s Response for a reply without extra headers, before
#: its content-length (``tests/test_fastpath.py`` compares every header of both paths).
_SERVED_HEADERS = tuple((k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in NO_STORE.items())
_CONTENT_TYPE = (b"content-type", XML_MEDIA_TYPE.encode("latin-1"))
#: Answers held until ``[auth] failure_floor_ms`` after the request arrived.
HELD_UNTIL_FLOOR = frozenset({LoginFailed.kind, TooManyAttempts.kind})
_NOT_ALLOWED = "Method not allowed: use GET or POST."


async def _read_body(scope: Scope, receive: Receive, server: ServerSettings) -> bytes:
    """A provisioning POST's form body, within ``body_timeout`` and ``max_body_bytes``."""
    content_type = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise BadRequest(f"unsupported content type {content_type!r}",
                         public_message="Bad request: send form-encoded parameters.")
    try:
        return await read_body(receive, limit=server.max_body_bytes,
                               timeout=server.body_timeout)
    except BodyTooLarge:
        raise BadRequest("request body too large",
                         public_message="Bad request: request body too large.") from None


#: A body that did not arrive whole: 408, and the connection closes (the rest may follow).
_BODY_MESSAGES = {
    BodyTimeout.kind: "Bad request: the request body took too long.",
    BodyIncomplete.kind: "Bad request: the request was incomplete when the client stopped "
                         "sending.",
}


def _error_response(status: int, message: str, headers: Mapping[str, str] | None = None,
                    ) -> Response:
    return Response(error_document(message), status_code=status, media_type=XML_MEDIA_TYPE,
                    headers={**NO_STORE, **(headers or {})})


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 answer with Zoiper's error document too, not Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    messages = {404: "Not found: this is not a provisioning URL.", 405: _NOT_ALLOWED}
    # Starlette's Allow lists HEAD, which provisioning paths refuse (see the endpoint).
    headers = {"Allow": "GET, POST"} if status == 405 else {}
    return _error_response(status, messages.get(status, "Bad request."), headers)


async def _answer(reply: Reply, arrived: float, failure_floor_ms: int) -> Response:
    """The response for a pipeline reply, on either path: the same bytes, the same headers."""
    if reply.error_kind in HELD_UNTIL_FLOOR:
        # Asleep on the event loop, not in a worker thread: guessing cannot starve the pool.
        # A refused (locked, limited) login waits too: otherwise each of a locked-out
        # attacker's connections loops as fast as the CPU answers 429s, and the CPU is
        # what the real user's login needs.
        floor = failure_floor_ms / 1000
        await asyncio.sleep(max(0.0, floor - (time.monotonic() - arrived)))
    return Response(reply.body, status_code=reply.status, media_type=XML_MEDIA_TYPE,
                    headers={**NO_STORE, **dict(reply.headers)})


Front = Callable[[Scope, Receive, Send], Awaitable[bool]]


@dataclass(frozen=True)
class Direct:
    """The provisioning paths, answered without Starlette's middleware and router."""

    paths: frozenset[str]
    #: The provisioning endpoint behind Starlette's last-resort 500 (plain text, as for
    #: every other route).
    app: ASGIApp
    #: ``/t/<key>/...`` is masked (:class:`~zengine.tenancy.PathKeyMask`) before the lookup.
    masked: bool


@dataclass(frozen=True)
class _Endpoint:
    call: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.call(scope, receive, send)


#: What Starlette answers a provisioning path for any other method (``_http_error``).
_METHODS = frozenset({"GET", "POST", "HEAD"})


class ZengineApp(Starlette):
    """Starlette, with the fast path (:mod:`zengine.fastpath`) and then the provisioning
    endpoint in front of its middleware: the router and the middleware stack cost more than
    the pipeline of a cached login, and every provisioning request is on a fixed path."""

    front: Front | None = None
    direct: Direct | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.front is not None and await self.front(scope, receive, send):
                return
            direct = self.direct
            if direct is not None and not scope.get("root_path"):
                if direct.masked:
                    # What PathKeyMask does (once: it is idempotent); the scope is a dict.
                    mask_scope(cast(dict[str, Any], scope))
                if scope["path"] in direct.paths:
                    if scope["method"] in _METHODS:
                        await direct.app(scope, receive, send)
                    else:
                        await _error_response(405, _NOT_ALLOWED, {"Allow": "GET, POST"})(
                            scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, load_entrypoints: bool = True,
    plugins: Sequence[tuple[str, object]] = (), runtime: Runtime | None = None,
) -> ZengineApp:
    """Build everything the server needs from ``settings``; nothing is global."""
    rt = runtime or build_runtime(settings, load_entrypoints=load_entrypoints, plugins=plugins)
    addresses = ClientAddresses(settings.server.trusted_proxies)

    async def provision_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        """Every provisioning request's ASGI app: called straight from :class:`ZengineApp`
        (no middleware or router in between) or through its Starlette route, alike."""
        arrived = time.monotonic()
        response, outcome, family, tenant = await answer(scope, receive, arrived)
        rt.hooks.request_finished(RequestSummary(
            scope["path"], response.status_code, outcome, family,
            time.monotonic() - arrived, tenant), rt)
        await response(scope, receive, send)

    async def answer(scope: Scope, receive: Receive,
                     arrived: float) -> tuple[Response, str, str | None, str]:
        if scope["method"] == "HEAD":
            # Starlette adds HEAD to GET routes; a login must not run without a body to send.
            return _error_response(405, _NOT_ALLOWED, {"Allow": "GET, POST"}), \
                "method", None, ""
        body = b""
        early_error: BadRequest | None = None
        # Only a POST has a body to read: a GET, almost every request, need not arm a timer
        # and cancel it again.
        if scope["method"] == "POST":
            try:
                body = await _read_body(scope, receive, settings.server)
            except BadRequest as exc:
                early_error = exc
            except (BodyTimeout, BodyIncomplete) as exc:
                log.info(f"provision.{exc.kind}", path=scope["path"])
                return _error_response(408, _BODY_MESSAGES[exc.kind], CLOSE), exc.kind, None, ""

        path: str = scope["path"]
        headers = Headers(scope=scope)
        peer = scope.get("client")
        # The real client (trusted proxies' headers applied): for the log, audit and limits.
        client_addr = addresses.resolve(peer[0] if peer else "", headers)

        def make() -> ProvisionRequest:
            if early_error is not None:
                raise early_error
            parsed = scope.get(PARSED_KEY)
            if parsed is not None and not body and scope.get(SCOPE_KEY) is None:
                return cast(ProvisionRequest, parsed)  # the fast path's, from this scope
            return build_request(
                path=path,
                query=scope.get("query_string", b""),
                body=body,
                headers=headers,
                client_addr=client_addr,
                settings=settings,
                path_key=scope.get(SCOPE_KEY),
            )

        work = functools.partial(handle, make, rt, path=path, client_addr=client_addr)
        try:
            reply = await threads.run(work, settings.server.backend_timeout)
        except errors.Overloaded as exc:  # answered as the pipeline answers a full pool
            log.warning("provision.error", kind=exc.kind, detail=exc.detail)
            return _error_response(status_for(exc, rt), exc.public_message,
                                   {"Retry-After": str(exc.retry_after)}), exc.kind, None, ""
        if reply is None:
            log.warning("provision.deadline", path=path,
                        backend_timeout=settings.server.backend_timeout)
            return _error_response(503, BackendUnavailable.public_message), "deadline", None, ""
        response = await _answer(reply, arrived, settings.auth.failure_floor_ms)
        if early_error is not None:
            # Refused before the body's end (its type, or cut at max_body_bytes): the rest may
            # follow, and uvicorn would read a trickled rest for as long as it came.
            response.headers.update(CLOSE)
        return response, reply.outcome, reply.family, reply.tenant

    provisioning = frozenset(_paths(settings))
    threads = OFFLOAD

    async def front(scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a fully cached login here and return ``True``; else ``False`` having done
        nothing, and the request goes the long way (Starlette, the worker thread)."""
        path = scope["path"]
        if not rt.started or not rt.fast.enabled or scope["method"] != "GET" \
                or path not in provisioning or scope.get("root_path"):
            return False
        arrived = time.monotonic()
        hit = rt.fast.lookup_scope(scope, path, addresses.resolve)
        if hit is None:
            return False
        client_addr = hit.request.client_addr
        reply = handle(lambda: hit.request, rt, path=path, client_addr=client_addr, hit=hit)
        if reply.error_kind is None and not reply.headers:
            # The served document (almost every fast answer): the ASGI messages Starlette's
            # Response would send, without building one (its headers are these, in order).
            rt.hooks.request_finished(RequestSummary(
                path, reply.status, reply.outcome, reply.family, time.monotonic() - arrived,
                reply.tenant), rt)
            await send({"type": "http.response.start", "status": reply.status,
                        "headers": [*_SERVED_HEADERS,
                                    (b"content-length", b"%d" % len(reply.body)),
                                    _CONTENT_TYPE]})
            await send({"type": "http.response.body", "body": reply.body})
            return True
        response = await _answer(reply, arrived, settings.auth.failure_floor_ms)
        # What the endpoint reports for every request, metrics included.
        rt.hooks.request_finished(RequestSummary(
            path, response.status_code, reply.outcome, reply.family,
            time.monotonic() - arrived, reply.tenant), rt)
        await response(scope, receive, send)
        return True

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(rt.start)
        rt.serve_on(asyncio.get_running_loop())
        log.info("zengine.started", plugins=rt.hooks.plugin_names(),
                 paths=list(_paths(settings)))
        doccache.warn_uncacheable(rt)
        try:
            yield
        finally:
            await run_in_threadpool(rt.stop)

    # An ASGI app, not a function: Starlette would call a function with a Request.
    endpoint = _Endpoint(provision_endpoint)
    routes: list[BaseRoute] = [Route(path, endpoint, methods=["GET", "POST"])
                               for path in _paths(settings)]
    middleware = []
    direct = set(provisioning)
    masked = "path_key" in rt.resolver.order and rt.resolver.enabled
    if masked:
        # /t/<key>/id.php, seen by everything after the mask as /t/~/id.php.
        routes.extend(Route(path, endpoint, methods=["GET", "POST"])
                      for path in keyed_paths(_paths(settings)))
        direct.update(keyed_paths(_paths(settings)))
        middleware.append(Middleware(PathKeyMask))
    routes.extend(health.routes(rt))
    routes.extend(plugin_routes(rt.hooks.register_routes(rt),
                                [*_paths(settings), *health.HEALTH_PATHS],
                                lambda summary: rt.hooks.request_finished(summary, rt)))
    app = ZengineApp(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={404: _http_error, 405: _http_error})
    app.front = front
    app.direct = Direct(frozenset(direct), ServerErrorMiddleware(endpoint), masked)
    # No slash redirect: it would echo the query (the password) in a Location built from the
    # client's Host header. ``/id.php/`` is a 404 error document like any unknown path.
    app.router.redirect_slashes = False
    app.state.runtime = rt
    return app


def _paths(settings: Settings) -> list[str]:
    return list(dict.fromkeys([*settings.server.paths, *settings.clients.desktop_paths]))
