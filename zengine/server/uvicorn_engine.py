"""uvicorn (``zengine[fast]``), with its access log's query string cut off.

uvicorn's access line is a fixed ``'%s - "%s %s HTTP/%s" %d'`` whose third argument is the path
*with* the query string, that is with the password. :class:`StripQuery` cuts it before any
handler formats the line; :func:`configure_worker` installs it in every worker process.
"""

from __future__ import annotations

import logging

from zengine.server import WORKER_APP, Bind
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


def configure_worker() -> None:
    """Install :class:`StripQuery` once (every worker process calls this at app start)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, StripQuery) for f in logger.filters):
        logger.addFilter(StripQuery())
    for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def run(settings: Settings, bind: Bind) -> int:
    import uvicorn

    options = {
        "host": bind.host,
        "port": bind.port,
        # zengine's logging, not uvicorn's dictConfig (whose access format keeps the query).
        "log_config": None,
        "access_log": settings.server.access_log,
        # Forwarded headers are never trusted by the engine; zengine decides that itself.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
    }
    configure_worker()
    if bind.workers == 1:
        from zengine.app import create_app

        uvicorn.Server(uvicorn.Config(create_app(settings), **options)).run()  # type: ignore[arg-type]
        return 0
    uvicorn.run(WORKER_APP, workers=bind.workers, **options)  # type: ignore[arg-type]
    return 0
