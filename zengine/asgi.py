"""ASGI entry point for worker processes of every engine (``zengine.asgi:app``).

Importing this module does nothing: the real app is built from ``$ZENGINE_CONFIG`` on the
first ASGI call (the lifespan startup), inside the worker process.
"""

from __future__ import annotations

from typing import Any

_app: Any = None


async def app(scope: Any, receive: Any, send: Any) -> None:
    global _app
    if _app is None:
        from zengine import http_layer
        from zengine.app import create_app
        from zengine.server import configure_worker
        from zengine.settings import load_settings

        settings = load_settings()
        configure_worker(settings)
        # Open files bound the connections a worker can hold, whatever the engine.
        http_layer.raise_open_file_limit()
        _app = create_app(settings)
    await _app(scope, receive, send)
