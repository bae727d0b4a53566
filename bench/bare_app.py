"""The bare-server baseline: an ASGI app that answers every request with one prebuilt body.

``BARE_BODY`` names the file with the body (alice's document as zengine serves it), read on the
first request, so each engine's own cost per request is what remains.
"""

from __future__ import annotations

import os
from typing import Any

_body: bytes | None = None
_HEADERS = [(b"content-type", b"application/xml; charset=utf-8"),
            (b"cache-control", b"no-store")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _body
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if _body is None:
        with open(os.environ["BARE_BODY"], "rb") as handle:
            _body = handle.read()
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(_body)).encode())]})
    await send({"type": "http.response.body", "body": _body})
