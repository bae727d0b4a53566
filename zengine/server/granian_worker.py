"""granian's worker app with ``[server] access_log`` on: :data:`zengine.asgi.app` with the
access line written by zengine (:func:`zengine.server.granian_engine.access_logged`). Imported
in granian's worker processes only (importing :mod:`zengine.asgi` sets up the worker's
``SIGHUP`` handling)."""

from __future__ import annotations

from zengine.asgi import app as _app
from zengine.server.granian_engine import access_logged

app = access_logged(_app)
