"""granian (``zengine[fast]``): a Rust HTTP server running the same ASGI app.

granian always runs the app in worker processes (even for ``workers = 1``); each builds its app
from ``$ZENGINE_CONFIG``. Its loggers are sent through zengine's redacting handler, and its
access log format uses ``path``, which granian keeps apart from the query string.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from zengine.server import WORKER_APP, Bind
from zengine.settings import Settings

# granian's atoms: ``path`` is without the query string (that one is ``query_string``).
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3fms'


def check_installed() -> None:
    import granian  # noqa: F401


def log_dictconfig(settings: Settings) -> dict[str, Any]:
    """granian's loggers without handlers of their own: they propagate to zengine's one."""
    level = settings.logging.level.upper()
    return {"loggers": {
        "_granian": {"handlers": [], "level": level, "propagate": True},
        "granian.access": {"handlers": [], "level": "INFO", "propagate": True},
    }}


def configure_worker() -> None:
    """The engine's loggers already go to zengine's handler; its access line is written
    straight to it (:class:`DirectAccess`)."""
    import granian.log

    if not isinstance(granian.log.access_logger, DirectAccess):
        # A stand-in, not a Logger: granian only calls its info().
        granian.log.access_logger = DirectAccess(  # type: ignore[assignment]
            granian.log.access_logger)


class DirectAccess:
    """Stands in for granian's ``granian.access`` logger, which its access-line function
    looks up at every request: the line goes straight to zengine's line handler (the same
    bytes as the stdlib record through the formatter, at about a third of the cost) when
    nothing else would see the record (:func:`zengine.log.direct_handler`), else to the
    logger as before."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def info(self, fmt: str, atoms: Mapping[str, Any]) -> None:
        from zengine.logline import log_direct

        try:
            message = fmt % atoms
        except (TypeError, KeyError, ValueError):
            message = None
        if message is None or not log_direct(self.logger, logging.INFO, message):
            self.logger.info(fmt, atoms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logger, name)


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


def run(settings: Settings, bind: Bind) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    server = _server_class(Granian)(
        WORKER_APP,
        address=bind.host,
        port=bind.port,
        interface=Interfaces.ASGI,
        # HTTP/1.1 only: granian's default ("auto") speaks HTTP/2 on cleartext to any client
        # that sends the preface (see docs/security.md, "The HTTP layer").
        http=HTTPModes.http1,
        workers=bind.workers,
        log_level=LogLevels(settings.logging.level),
        log_dictconfig=log_dictconfig(settings),
        log_access=settings.server.access_log,
        log_access_format=ACCESS_LOG_FORMAT,
        # The nearest granian has to a read timeout: the time a client may take to send its
        # request head.
        http1_settings=HTTP1Settings(header_read_timeout=settings.server.read_timeout * 1000),
        workers_kill_timeout=5,
    )
    server.serve()
    return 0
