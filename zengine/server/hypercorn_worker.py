"""hypercorn's worker app: :data:`zengine.asgi.app` with each HTTP request's lines and its
access line written together (:func:`zengine.server.hypercorn_engine.lines_held`). Imported in
hypercorn's worker processes only (importing :mod:`zengine.asgi` sets up the worker's
``SIGHUP`` handling)."""

from __future__ import annotations

from zengine.asgi import app as _app
from zengine.server.hypercorn_engine import lines_held

app = lines_held(_app)
