"""ASGI entry point for worker processes of every engine (``zengine.asgi:app``).

Importing this module only makes the worker ignore ``SIGHUP`` until its app has started: the
real app is built from ``$ZENGINE_CONFIG`` on the first ASGI call (the lifespan startup), inside
the worker process, and from then on ``SIGHUP`` reloads it (see :mod:`zengine.reload`).
"""

from __future__ import annotations

from typing import Any

from zengine.reload import ignore_sighup

_app: Any = None
ignore_sighup()


async def app(scope: Any, receive: Any, send: Any) -> None:
    global _app
    if _app is None:
        from zengine import http_layer
        from zengine.app import create_app
        from zengine.reload import Reloadable
        from zengine.server import configure_worker
        from zengine.settings import load_settings

        settings = load_settings()
        configure_worker(settings)
        # Open files bound the connections a worker can hold, whatever the engine.
        http_layer.raise_open_file_limit()
        _app = Reloadable(create_app(settings), lambda: create_app(load_settings()), sighup=True)
    await _app(scope, receive, send)
