"""Mounting plugin routes (:func:`~zengine.hookspecs.zengine_register_routes`) with the shared
security headers every zengine response carries unless it sets its own, each answer reported
to :func:`~zengine.hookspecs.zengine_request_finished` under its route's template."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zengine.errors import ConfigError
from zengine.models import RequestSummary

#: Where a plugin route's answers are reported (the app passes the runtime's hook).
Finished = Callable[[RequestSummary], None]

#: Defaults for every response from a plugin route; a response that sets one keeps its own.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
)


class SecurityHeaders:
    """Pure ASGI middleware (no per-request Request object): adds missing security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in SECURITY_HEADERS if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def route_outcome(status: int) -> str:
    """A plugin route's outcome, from its status: the provisioning vocabulary's words."""
    if status < 400:
        return "served"
    if status == 429:
        return "too_many_attempts"
    if status < 500:
        return "rejected"
    return "unavailable" if status == 503 else "error"


class Counted:
    """Pure ASGI middleware: reports each answer of one plugin route, once, as it starts.

    The summary's path is the route's template (``/api/v1/users/{username}``), never the path
    asked: a path may carry a token, a key or a name, and a metric label must stay bounded.
    """

    def __init__(self, app: ASGIApp, route: Route | Mount, finished: Finished) -> None:
        self.app = app
        self.route = route
        self.finished = finished

    def template(self, scope: Scope) -> str:
        # Inside a Mount the inner router has put its matched route in the same scope by the
        # time the answer starts; a request it matched nothing for keeps the Mount's prefix.
        inner = scope.get("route")
        if isinstance(self.route, Mount) and isinstance(inner, Route | Mount) \
                and inner is not self.route:
            return self.route.path + inner.path
        return self.route.path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        reported = False

        def report(status: int) -> None:
            nonlocal reported
            if not reported:
                reported = True
                self.finished(RequestSummary(self.template(scope), status,
                                             route_outcome(status), None,
                                             time.monotonic() - arrived))

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                report(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except HTTPException as exc:
            report(exc.status_code)  # a Mount's 404 or 405, answered by the app's handler
            raise
        except Exception:
            report(500)  # Starlette's error middleware answers it
            raise


def _paths(route: BaseRoute) -> Iterable[str]:
    if isinstance(route, Route | Mount):
        yield route.path


def plugin_routes(routes: Sequence[BaseRoute], reserved: Iterable[str],
                  finished: Finished | None = None) -> list[BaseRoute]:
    """Plugin routes, each wrapped in :class:`SecurityHeaders` (and :class:`Counted` when
    ``finished`` is given), checked against the core's paths.

    Each route is wrapped on its own rather than gathered under one catch-all ``Mount``: a
    catch-all would match every path, so a provisioning path asked with a wrong method would
    answer 404 instead of 405. The app's router never redirects a trailing slash: Starlette's
    redirect repeats the query string (a token, a password) in a ``Location`` built from the
    client's ``Host``.
    """
    taken = set(reserved)
    for route in routes:
        for path in _paths(route):
            if path in taken:
                raise ConfigError(f"a plugin route uses the path {path!r}, which zengine "
                                  "itself serves; give the plugin another path")
            taken.add(path)
        if isinstance(route, Route | Mount):
            # Route.handle and Mount.handle both call ``self.app``.
            route.app = SecurityHeaders(route.app)
            if finished is not None:
                route.app = Counted(route.app, route, finished)
    return list(routes)
