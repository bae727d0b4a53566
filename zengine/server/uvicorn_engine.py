"""uvicorn (``zengine[fast]``), with its access log's query string cut off.

uvicorn's access line is a fixed ``'%s - "%s %s HTTP/%s" %d'`` whose third argument is the path
*with* the query string, that is with the password. :class:`StripQuery` cuts it before any
handler formats the line; :func:`configure_worker` installs it in every worker process.

TLS (``[server] tls_*``) is Python's ``ssl`` module, so it takes every key ``check_tls`` loaded.
uvicorn speaks HTTP/1.1 only (no ALPN ``h2``): ``tls_http2 = true`` is refused before it starts
(:func:`zengine.server.serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import ssl
from typing import Any

from zengine.reload import spawning_ignores_sighup
from zengine.server import TLS12_CIPHERS, WORKER_APP, Bind, tls_files
from zengine.settings import Settings

ACCESS_LOGGER = "uvicorn.access"


def check_installed() -> None:
    import uvicorn  # noqa: F401


class StripQuery(logging.Filter):
    """Drop everything from ``?`` in uvicorn's request-path argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def configure_worker(settings: Settings) -> None:
    """Install :class:`StripQuery` once (every worker process calls this at app start), and
    send uvicorn's loggers to zengine's handler: the access logger only with ``access_log``.
    uvicorn writes an access line whenever that logger has a handler, its own or by propagation
    (``hasHandlers``), so propagating it regardless turned a worker's log back on after uvicorn
    had turned it off (``workers`` > 1, ``access_log = false``)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, StripQuery) for f in logger.filters):
        logger.addFilter(StripQuery())
    for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != ACCESS_LOGGER or settings.server.access_log


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` options for ``[server] tls_*`` (none without TLS), and the event loop
    that bounds the handshake by ``read_timeout`` (:func:`handshake_bounded_loop`)."""
    files = tls_files(settings)
    if files is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(files.certificate),
        "ssl_keyfile": str(files.key),
        "ssl_ciphers": TLS12_CIPHERS,
        # A module-level function with its argument: the config is pickled to each worker.
        "loop": functools.partial(handshake_bounded_loop, float(settings.server.read_timeout))}
    if files.client_ca is not None:
        options.update(ssl_ca_certs=str(files.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def handshake_bounded_loop(timeout: float) -> asyncio.AbstractEventLoop:
    """The event loop uvicorn would choose (uvloop when installed), whose TLS servers drop a
    client that has not finished the handshake within ``timeout`` seconds. uvicorn creates
    its servers without ``ssl_handshake_timeout``, so asyncio's and uvloop's 60 s held a
    client silent after connecting that long, whatever ``read_timeout`` said."""
    base: Any
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with zengine[fast]
        base = asyncio.SelectorEventLoop
    else:
        base = uvloop.Loop

    class Loop(base):  # type: ignore[misc]
        async def create_server(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", timeout)
            return await super().create_server(*args, **kwargs)

    loop: asyncio.AbstractEventLoop = Loop()
    return loop


def run(settings: Settings, bind: Bind) -> int:
    import uvicorn

    options: dict[str, Any] = {
        "host": bind.host,
        "port": bind.port,
        # zengine's logging, not uvicorn's dictConfig (whose access format keeps the query).
        "log_config": None,
        "access_log": settings.server.access_log,
        # Forwarded headers are never trusted by the engine; zengine decides that itself.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
        # uvicorn's supervisor kills a worker that does not answer its ping within this: its
        # default (5 s) is shorter than a worker's start on a busy machine, which then kills
        # and restarts its workers for ever.
        "timeout_worker_healthcheck": 60,
        **tls_options(settings),
    }
    configure_worker(settings)
    if bind.workers == 1:
        from zengine.app import create_app
        from zengine.reload import Reloadable
        from zengine.settings import load_settings

        app = Reloadable(create_app(settings), lambda: create_app(load_settings()), sighup=True)
        # uvicorn raises the SIGTERM it stopped on again once it is done, to the handler it
        # found: with the default one the process would die there, before `serve` removes its
        # pid file. This one unwinds instead.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.Server(uvicorn.Config(app, **options)).run()
        return 0
    config = uvicorn.Config(WORKER_APP, workers=bind.workers, **options)
    supervisor = _supervisor()(config, sockets=[config.bind_socket()])
    supervisor.run()
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _supervisor() -> Any:
    """uvicorn's multi-process supervisor, but ``SIGHUP`` goes on to the workers, each of which
    reloads itself (:mod:`zengine.reload`). uvicorn's own ``SIGHUP`` starts a new process per
    worker and stops the old one: that closes its keep-alive connections (a client that sends
    on one as it closes sees an error), and a config that no longer loads is only a worker that
    "was not ready in time", without the reason."""
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Supervisor(Multiprocess):
        def init_processes(self) -> None:
            with spawning_ignores_sighup():
                super().init_processes()

        def handle_hup(self) -> None:
            from zengine.reload import log

            pids = [worker.process.pid for worker in self.processes if worker.process.pid]
            log.info("zengine.reload_requested", workers=len(pids))
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)

    return Supervisor
