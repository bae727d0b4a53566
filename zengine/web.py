"""Mounting plugin routes (:func:`~zengine.hookspecs.zengine_register_routes`) with the shared
security headers every zengine response carries unless it sets its own."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zengine.errors import ConfigError

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


def _paths(route: BaseRoute) -> Iterable[str]:
    if isinstance(route, Route | Mount):
        yield route.path


def plugin_routes(routes: Sequence[BaseRoute], reserved: Iterable[str]) -> list[BaseRoute]:
    """Plugin routes, each wrapped in :class:`SecurityHeaders`, checked against the core's paths.

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
    return list(routes)
