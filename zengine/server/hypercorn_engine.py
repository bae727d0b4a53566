"""hypercorn (the default engine), with an access log that never prints the query string."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hypercorn.config import Config, Sockets

from zengine.log import held_lines
from zengine.server import TLS12_CIPHERS, Bind, tls_files
from zengine.settings import Settings

# Hypercorn's default format carries the Referer (which may hold a query string); ours does
# not, and ``%(r)s`` is the request line *without* the query string.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'
#: The worker app: :data:`zengine.asgi.app` with each request's lines held (:func:`lines_held`).
HELD_LINES_APP = "zengine.server.hypercorn_worker:app"
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]


def lines_held(app: ASGIApp) -> ASGIApp:
    """``app`` with an HTTP request's lines and its access line in one write: hypercorn logs
    the access line from inside the app's last ``send`` (the response is on its way by then),
    so a :func:`zengine.log.held_lines` block around the app holds it with the lines the
    request logged on the event loop (a fast-path hit); the long path's thread writes its own.
    One ``write`` system call less per request answered on the event loop. Other scopes (the
    lifespan lasts as long as the process) are not held."""

    async def held(scope: Message, receive: Callable[[], Awaitable[Message]],
                   send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        with held_lines():
            await app(scope, receive, send)

    return held


def check_installed() -> None:
    """hypercorn is a core dependency: nothing to check."""


def hypercorn_config(settings: Settings, bind: Bind) -> Config:
    config = Config()
    config.bind = [bind.address]
    config.workers = bind.workers
    config.access_log_format = ACCESS_LOG_FORMAT
    config.accesslog = logging.getLogger("hypercorn.access") if settings.server.access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0
    # A client that stops sending is dropped instead of holding a connection for ever.
    config.read_timeout = settings.server.read_timeout
    harden_hypercorn(config)
    server = settings.server
    files = tls_files(settings)
    if files is not None:
        config.certfile = str(files.certificate)
        config.keyfile = str(files.key)
        config.ciphers = TLS12_CIPHERS
        # The read deadline starts after the handshake: without this, a client silent in it
        # held its connection for hypercorn's 60 s whatever read_timeout says.
        config.ssl_handshake_timeout = server.read_timeout
        if files.client_ca is not None:
            config.ca_certs = str(files.client_ca)
            config.verify_mode = ssl.CERT_REQUIRED
        # After harden_hypercorn, which keeps cleartext (and by default TLS) at HTTP/1.1.
        config.alpn_protocols = ["h2", "http/1.1"] if server.tls_http2 else ["http/1.1"]
    return config


def harden_hypercorn(config: Config) -> None:
    """Hypercorn's own answers (malformed HTTP, huge headers, unknown transfer codings) become
    4xx ``<error>`` documents, and HTTP/2 and WebSocket stay off (see docs/security.md)."""
    from zengine import http_layer

    http_layer.install()
    # No HTTP/2 over TLS either (TLS ends at the reverse proxy; see docs/deployment.md).
    config.alpn_protocols = ["http/1.1"]
    # Access-log atoms cut and escaped (User-Agent at most 96 characters).
    config.logger_class = http_layer.AccessLogger
    # Open files bound the connections a worker can hold: use all the hard limit allows.
    http_layer.raise_open_file_limit()


def configure_worker(settings: Settings) -> None:
    """Each worker process has its own hypercorn classes to harden (see harden_hypercorn)."""
    from zengine import http_layer

    http_layer.install()


def run(settings: Settings, bind: Bind) -> int:
    config = hypercorn_config(settings, bind)
    if bind.workers == 1:
        from hypercorn.asyncio import serve as hypercorn_serve

        from zengine.app import create_app
        from zengine.reload import Reloadable
        from zengine.settings import load_settings

        # SIGHUP re-reads the file ``serve`` was started with ($ZENGINE_CONFIG, set by serve).
        app = Reloadable(create_app(settings), lambda: create_app(load_settings()), sighup=True)
        asyncio.run(_serve_until_signal(hypercorn_serve, lines_held(app), config))
        return 0
    config.application_path = HELD_LINES_APP
    return run_workers(config)


async def _serve_until_signal(serve_fn: Any, app: Any, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_fn(app, config, shutdown_trigger=stop.wait)


def run_workers(config: Config) -> int:
    """hypercorn's multi-process supervisor (``hypercorn.run.run``), but ``SIGHUP`` goes on to
    the workers, each of which reloads itself. hypercorn's own ``SIGHUP`` stops every worker and
    starts new ones: requests fail while none runs, and a broken config leaves none at all.

    As hypercorn's: a worker that exits stops the others (systemd's ``Restart=`` starts the
    server again); ``SIGINT``/``SIGTERM`` stop the workers gracefully.
    """
    from multiprocessing import get_context
    from multiprocessing.connection import wait

    from hypercorn.asyncio.run import asyncio_worker

    from zengine.reload import forward_sighup, spawning_ignores_sighup

    per_worker = worker_sockets(config)
    ctx = get_context("spawn")
    shutdown_event = ctx.Event()
    # An ignored SIGINT is inherited by the workers: the parent decides when they stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    processes = [ctx.Process(target=asyncio_worker, kwargs={
        "config": config, "shutdown_event": shutdown_event, "sockets": sockets})
        for sockets in per_worker]
    with spawning_ignores_sighup():
        for process in processes:
            process.start()

    def shutdown(signum: int, frame: object) -> None:
        shutdown_event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, shutdown)
    forward_sighup(lambda: [p.pid or 0 for p in processes if p.exitcode is None])
    wait([process.sentinel for process in processes])
    shutdown_event.set()
    exitcode = 0
    for process in processes:
        process.join(config.graceful_timeout + 5)
        if process.exitcode is None:
            process.terminate()
            process.join()
        exitcode = exitcode or (process.exitcode or 0)
    for sockets in per_worker:
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
            sock.close()
    return exitcode


def worker_sockets(config: Config) -> list[Sockets]:
    """Each worker's listening sockets: a set of its own per worker when every bind is a TCP
    ``host:port`` with a fixed port, else one set shared by all (as hypercorn does).

    hypercorn binds one socket and every worker accepts from it: whichever worker wakes first
    takes a burst of new connections, and keep-alive clients (a reverse proxy's upstream
    connections, wrk's 32) can stay on one worker while the other idles (measured: the same
    warm login at 2,676 and 5,021 requests/s in one run, at the same CPU per request). Sockets
    of their own, all bound with ``SO_REUSEPORT`` (hypercorn sets it for several workers), let
    the kernel spread connections over the workers by their addresses. A unix socket or an
    inherited descriptor cannot be bound twice, and port 0 would give each worker another
    port: those stay shared."""
    if config.workers <= 1 or not all(_fixed_tcp_port(bind) for bind in config.bind):
        shared = config.create_sockets()
        return [shared] * max(config.workers, 1)
    return [config.create_sockets() for _ in range(config.workers)]


def _fixed_tcp_port(bind: str) -> bool:
    """``host:port`` with a port other than 0: a bind each worker can make again."""
    if bind.startswith(("unix:", "fd://")) or ":" not in bind:
        return False
    return bind.rsplit(":", 1)[1] not in ("", "0")
