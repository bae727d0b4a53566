"""granian (``zengine[fast]``): a Rust HTTP server running the same ASGI app.

granian always runs the app in worker processes (even for ``workers = 1``); each builds its app
from ``$ZENGINE_CONFIG``. Its loggers are sent through zengine's redacting handler. Its access
line is written by zengine (:func:`access_logged`, the app of :mod:`zengine.server.granian_worker`),
in granian's format, from ``path``, which granian keeps apart from the query string.

TLS (``[server] tls_*``) is granian's own (rustls): it reads the PEM key whether PKCS#8,
PKCS#1 (``BEGIN RSA PRIVATE KEY``) or SEC1 (``BEGIN EC PRIVATE KEY``), tried on granian 2.8.9
and kept by tests/deploy/test_tls.py, so no key is converted (its ``--ssl-keyfile`` help's
"PKCS#8 format only" is out of date). Its TLS handshake has a fixed 10 s limit of its own
that ``read_timeout`` cannot change (measured: a client silent after connecting is dropped
at 10 s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from zengine.log import held_lines
from zengine.server import WORKER_APP, Bind, tls_files
from zengine.settings import Settings

# granian's atoms: ``path`` is without the query string (that one is ``query_string``).
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3fms'
#: The worker app: zengine's, with the access line written by :func:`access_logged`.
ACCESS_LOGGED_APP = "zengine.server.granian_worker:app"
_ACCESS = logging.getLogger("granian.access")
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]


def check_installed() -> None:
    import granian  # noqa: F401


def log_dictconfig(settings: Settings) -> dict[str, Any]:
    """granian's loggers without handlers of their own: they propagate to zengine's one."""
    level = settings.logging.level.upper()
    return {"loggers": {
        "_granian": {"handlers": [], "level": level, "propagate": True},
        "granian.access": {"handlers": [], "level": "INFO", "propagate": True},
    }}


def configure_worker(settings: Settings) -> None:
    """Nothing per worker: granian's loggers already go to zengine's handler, and its access
    line is zengine's (:func:`access_logged`)."""


def access_line(scope: Mapping[str, Any], status: int, seconds: float) -> None:
    """granian's access line for ``scope`` (the same message, logger and level as its own,
    with the atoms :data:`ACCESS_LOG_FORMAT` prints), straight to the line handler when
    nothing else would see it (:func:`zengine.logline.log_direct`)."""
    from zengine.logline import log_direct

    client = scope.get("client")
    atoms = {"addr": client[0] if client else "-", "method": scope.get("method", "-"),
             "path": scope["path"], "protocol": "HTTP/" + scope["http_version"],
             "status": status, "dt_ms": seconds * 1000}
    if not log_direct(_ACCESS, logging.INFO, ACCESS_LOG_FORMAT % atoms):
        _ACCESS.info(ACCESS_LOG_FORMAT, atoms)


def access_logged(app: ASGIApp) -> ASGIApp:
    """``app`` with granian's access line written here, granian's own being off: for every
    request granian builds a dict of every atom, a local time formatted with ``strftime``
    among them, that :data:`ACCESS_LOG_FORMAT` never prints (about a third of the line's
    cost, profiled: docs/benchmarks.md). As granian does: an HTTP request's line after the
    app returned or raised (the status sent, 500 when none was: granian answers 500 then),
    with the path the app left in the scope (a masked ``/t/<key>/``); a WebSocket's as it
    starts (101)."""

    async def logged(scope: Message, receive: Callable[[], Awaitable[Message]],
                     send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                access_line(scope, 101, 0.0)
            await app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # The request's lines and its access line in one write (a request answered on the
        # event loop; the long path's thread writes its own): one system call less each.
        with held_lines():
            try:
                await app(scope, receive, sending)
            finally:
                access_line(scope, status, time.perf_counter() - start)

    return logged


def _server_class(base: Any) -> Any:
    """granian's server, but ``SIGHUP`` goes on to the workers, each of which reloads itself
    (:mod:`zengine.reload`). granian's own ``SIGHUP`` starts a new process per worker and stops
    the old one: that closes its connections, and a config that no longer loads ends the new
    worker with a traceback instead of keeping the old app and saying why."""
    from zengine.reload import forward_sighup, spawning_ignores_sighup

    class Server(base):  # type: ignore[misc]
        def _spawn_workers(self, *args: Any, **kwargs: Any) -> Any:
            with spawning_ignores_sighup():
                result = super()._spawn_workers(*args, **kwargs)
            # After granian's startup has set its own handler (set_main_signals).
            forward_sighup(lambda: [worker._id() or 0 for worker in self.wrks])
            return result

        def _respawn_workers(self, *args: Any, **kwargs: Any) -> Any:
            # A crashed worker's replacement: the same protection as at startup.
            with spawning_ignores_sighup():
                return super()._respawn_workers(*args, **kwargs)

    return Server


def tls_options(settings: Settings) -> dict[str, Any]:
    """granian's ``ssl_*`` arguments for ``[server] tls_*`` (none without TLS)."""
    from granian.constants import SSLProtocols

    files = tls_files(settings)
    if files is None:
        return {}
    options: dict[str, Any] = {
        "ssl_cert": files.certificate,
        "ssl_key": files.key,
        # granian's default minimum is TLS 1.3; hypercorn's (and uvicorn's) is 1.2, which
        # older phones still need.
        "ssl_protocol_min": SSLProtocols.tls12}
    if files.client_ca is not None:
        # Required, not requested: a client without a certificate the CA signed is refused in
        # the handshake.
        options.update(ssl_ca=files.client_ca, ssl_client_verify=True)
    return options


def run(settings: Settings, bind: Bind) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    tls = tls_options(settings)
    server = _server_class(Granian)(
        ACCESS_LOGGED_APP if settings.server.access_log else WORKER_APP,
        address=bind.host,
        port=bind.port,
        interface=Interfaces.ASGI,
        # HTTP/1.1 only: granian's default ("auto") speaks HTTP/2 on cleartext to any client
        # that sends the preface (see docs/security.md, "The HTTP layer"). With TLS and
        # tls_http2, "auto": ALPN offers h2 and http/1.1.
        http=HTTPModes.auto if tls and settings.server.tls_http2 else HTTPModes.http1,
        workers=bind.workers,
        log_level=LogLevels(settings.logging.level),
        log_dictconfig=log_dictconfig(settings),
        # The access line is zengine's (access_logged): granian's own stays off.
        log_access=False,
        # The nearest granian has to a read timeout: the time a client may take to send its
        # request head.
        http1_settings=HTTP1Settings(header_read_timeout=settings.server.read_timeout * 1000),
        workers_kill_timeout=5,
        **tls,
    )
    server.serve()
    return 0
