"""Reading a request's body whole: at most ``limit`` bytes, all of it within ``[server]
body_timeout`` seconds however the client trickles it. ``read_timeout`` only bounds the silence
between two reads, so without a deadline for the whole body one byte sent just under
``read_timeout`` apart would hold a connection and a request almost indefinitely.

Every route of the core and of the built-in plugins that reads a body reads it here: the
provisioning endpoint (:mod:`zengine.app`), the portal's and the console's forms
(:func:`zengine.webforms.read_form`) and the admin API. Each route family answers the three
refusals below its own way (an ``<error>`` document, an HTML page, a problem document), never
with a 500; a body is handed on only once it is whole, so nothing ever acts on part of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from starlette.types import Receive

#: Headers of an answer given before the body's end: the rest of the body may still be on its
#: way, so the connection cannot carry another request.
CLOSE: Mapping[str, str] = MappingProxyType({"Connection": "close"})


class BodyRefused(Exception):
    """The body was not read whole; :attr:`kind` says why (a log event's, a metric's word)."""

    kind: ClassVar[str] = "body_refused"


class BodyTooLarge(BodyRefused):
    """More than ``limit`` bytes (the rest is not read)."""

    kind = "body_too_large"


class BodyTimeout(BodyRefused):
    """Not whole within ``timeout`` seconds of the first read, however steadily it came."""

    kind = "body_timeout"


class BodyIncomplete(BodyRefused):
    """The client stopped before the body's end: it went silent past ``read_timeout``, shut
    its side, or closed the connection (the server reports each as a disconnect)."""

    kind = "body_incomplete"


async def read_body(receive: Receive, *, limit: int, timeout: float) -> bytes:
    """The whole body of the request ``receive`` belongs to, or :class:`BodyTooLarge`,
    :class:`BodyTimeout` or :class:`BodyIncomplete`.

    ``timeout`` is the route's ``runtime.settings.server.body_timeout``; ``limit`` its own
    size limit. Call it once per request, before acting on anything the body says.
    """
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            # Bounded by the sender: each message is one receive, the body ends at
            # more_body=False.
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "http.disconnect":
                    raise BodyIncomplete("the client stopped sending before the body's end")
                if kind != "http.request":
                    continue
                body += message.get("body", b"")
                if len(body) > limit:
                    raise BodyTooLarge(f"the body is over {limit} bytes")
                if not message.get("more_body", False):
                    return bytes(body)
    except TimeoutError:
        raise BodyTimeout(f"the body was not whole within {timeout:g} s") from None
