"""What hypercorn answers on its own, below the app, made to follow zengine's rules.

Hypercorn answers malformed HTTP (bad request line, missing or duplicate Host, huge headers,
unknown transfer codings) with an empty body, and answers ``Transfer-Encoding: gzip`` with a
501 — a 5xx for a client's mistake. It also switches to HTTP/2 on cleartext (``PRI *`` prior
knowledge, ``Upgrade: h2c``) and to WebSocket on ``Upgrade: websocket``, none of which
provisioning uses. The subclasses here answer every such case with Zoiper's ``<error>``
document, ``no-store`` and a 4xx, and keep the connection on HTTP/1.1. A request for a JSON
API's path (:data:`API_PREFIX`, the admin API's ``/api/v1``) gets the same status as an
RFC 9457 ``application/problem+json`` document instead, as the API answers everything else.

Hypercorn has no public hook for this, so :func:`install` replaces its HTTP/1.1 protocol and
stream classes by subclasses that override three private methods. ``tests/test_http_layer.py``
drives each case over a raw socket against the real server, so a hypercorn upgrade that moves
these methods fails the suite instead of silently undoing the hardening.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from itertools import chain
from typing import Any

import h11
import hypercorn.logging
import hypercorn.protocol
import hypercorn.protocol.h2
import hypercorn.protocol.h11
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream

from zengine.xmlio import error_document

#: Statuses hypercorn or h11 produce for a client's mistake, and what each becomes.
_MESSAGES = {
    400: "Bad request: malformed HTTP request.",
    404: "Not found: this is not a provisioning URL.",
    408: "Bad request: the request was incomplete when the client stopped sending.",
    413: "Bad request: request too large.",
    414: "Bad request: request line too long.",
    431: "Bad request: request headers too large.",
    500: "Provisioning failed. Please try again later.",
    503: "The provisioning service is temporarily unavailable. Please try again later.",
}
#: Targets below this prefix belong to a JSON API (the admin API is ``/api/v1``): its clients
#: parse problem documents, not Zoiper's XML. Seen in the raw request line, as far as it came.
API_PREFIX = b"/api/"
#: A 5xx hint from h11 (501 for an unknown transfer coding, 505 for an HTTP version) is a
#: client's mistake, answered 400.
_CLIENT_FALLBACK = 400


def error_headers(body: bytes, media_type: bytes = b"application/xml; charset=utf-8",
                  ) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", media_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), (b"pragma", b"no-cache"),
            (b"x-content-type-options", b"nosniff"), (b"connection", b"close")]


def error_answer(status: int, *, client_mistake: bool) -> tuple[int, bytes]:
    """The status and ``<error>`` body for something hypercorn answers on its own."""
    if client_mistake and status >= 500:
        status = _CLIENT_FALLBACK
    return status, error_document(_MESSAGES.get(status, _MESSAGES[400]))


def error_response(status: int, *, client_mistake: bool, api: bool,
                   ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body: the ``<error>`` document, or for an API path (``api``) the
    same status and message as an RFC 9457 problem (``about:blank``: the title is the status
    phrase)."""
    status, body = error_answer(status, client_mistake=client_mistake)
    if not api:
        return status, error_headers(body), body
    problem = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
               "detail": _MESSAGES.get(status, _MESSAGES[400])}
    body = json.dumps(problem).encode()
    return status, error_headers(body, b"application/problem+json"), body


def is_api_target(request_head: bytes) -> bool:
    """Whether the raw bytes of a request (its line first, perhaps cut short) ask for a path
    below :data:`API_PREFIX`."""
    # RFC 9112 lets a client send empty lines before the request line.
    _method, _, rest = request_head.lstrip(b"\r\n")[:256].partition(b" ")
    return rest.startswith(API_PREFIX)


class ZengineHTTPStream(HTTPStream):
    """Hypercorn's stream, with its own error answers (404 for a server name, 500 when the app
    sent nothing) as error documents."""

    async def _send_error_response(self, status_code: int) -> None:
        # A 500 here means the app sent nothing (a bug), so it stays a 500.
        # No scope yet when hypercorn refuses the request before building one.
        scope = getattr(self, "scope", None)
        path = scope.get("path", "") if isinstance(scope, dict) else ""
        status, headers, body = error_response(
            status_code, client_mistake=False, api=is_api_target(b"GET " + path.encode()))
        await self.send(Response(stream_id=self.stream_id, headers=headers,
                                 status_code=status))
        await self.send(Body(stream_id=self.stream_id, data=body))
        await self.send(EndBody(stream_id=self.stream_id))
        self.state = ASGIHTTPState.CLOSED
        await self.config.log.access(self.scope, {"status": status, "headers": []}, 0.0)


class ZengineH11Protocol(H11Protocol):
    """HTTP/1.1 only: no h2c upgrade, no prior-knowledge HTTP/2, no WebSocket; errors as
    documents. A response's head goes out with its first body bytes, in one write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head: bytes | None = None
        self._loop = asyncio.get_running_loop()

    async def _send_h11_event(self, event: Any) -> None:
        # hypercorn writes each h11 event by itself: the head and the body of a phone's
        # document were two send() system calls (and two TCP segments). The head waits for
        # the body (or the end of the message) and both go in one write; anything else
        # first sends the head alone, and so does the loop's next turn if the app sends
        # nothing more meanwhile (a slow streamed body), so no head waits for a slow body.
        kind = type(event)
        if kind is h11.Response and self._head is None:
            try:
                self._head = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
                return
            self._loop.call_soon(self._head_alone)
            return
        head = self._head
        if head is not None:
            self._head = None
            if kind is h11.Data or kind is h11.EndOfMessage:
                try:
                    data = self.connection.send(event)
                except h11.LocalProtocolError:
                    if self.connection.their_state != h11.ERROR:
                        raise
                    data = b""
                await self.send(RawData(data=head + (data or b"")))
                return
            await self.send(RawData(data=head))
        await super()._send_h11_event(event)

    def _head_alone(self) -> None:
        if self._head is not None:
            task = self._loop.create_task(self._send_head())
            _HEADS.add(task)
            task.add_done_callback(_HEADS.discard)

    async def _send_head(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            await self.send(RawData(data=head))

    async def handle(self, event: Any) -> None:
        if self.stream is None and (isinstance(event, Closed) or (
                isinstance(event, RawData) and not event.data)) and self._half_received():
            # Silent past read_timeout, or gone (closed, or its side shut: an empty read), in
            # the middle of a request line or headers: answer rather than close without a
            # word (the client may still be reading). h11 would take the empty read for a
            # malformed request (400).
            await self._send_error_response(408)
            if isinstance(event, RawData):
                await self.send(Closed())
                return
        if isinstance(event, RawData) and not event.data and self._mid_body():
            # Its side shut half-way through a body: to the app, the disconnect that silence
            # past read_timeout is too, so both are the app's 408 (zengine.bodies). h11
            # would take the empty read for a malformed request (400).
            event = Closed()
        await super().handle(event)

    def _mid_body(self) -> bool:
        connection = self.connection
        return (self.stream is not None and isinstance(connection, h11.Connection)
                and connection.their_state is h11.SEND_BODY
                and connection.our_state is h11.SEND_RESPONSE)

    def _half_received(self) -> bool:
        connection = self.connection
        if not isinstance(connection, h11.Connection) or connection.our_state is not h11.IDLE:
            return False
        return connection.their_state is not h11.IDLE or bool(connection.trailing_data[0])

    async def _send_error_response(self, status_code: int) -> None:
        # Only h11's parse errors reach here: the client's mistake, whatever h11's hint. h11
        # still holds what it could not parse (an oversized head stays whole in its buffer).
        connection = self.connection
        head = connection.trailing_data[0] if isinstance(connection, h11.Connection) else b""
        status, own, body = error_response(status_code, client_mistake=True,
                                           api=is_api_target(head))
        headers = list(chain(own, self.config.response_headers("h11")))
        await self._send_h11_event(h11.Response(status_code=status, headers=headers))
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    async def _check_protocol(self, event: h11.Request) -> None:
        if event.method == b"PRI" and event.target == b"*":
            # HTTP/2 prior knowledge: refused, the preface that follows is not HTTP/1.1.
            await self._send_error_response(400)
            await self.send(Closed())
            raise _Refused
        # ``Upgrade: h2c`` is ignored (RFC 9110 lets a server ignore Upgrade): answered in 1.1.

    async def _create_stream(self, request: h11.Request) -> None:
        # Without the Upgrade header the base class never builds a WebSocket stream: a
        # WebSocket handshake is answered like any other GET, by the app, in HTTP/1.1. A new
        # h11.Request validates every header again: only made for a request that has one
        # (h11 gives header names lower-cased).
        if any(name == b"upgrade" for name, _value in request.headers):
            headers = [(name, value) for name, value in request.headers if name != b"upgrade"]
            request = h11.Request(method=request.method, target=request.target,
                                  headers=headers, http_version=request.http_version)
        await super()._create_stream(request)

    async def _handle_events(self) -> None:
        try:
            await super()._handle_events()
        except _Refused:
            return


#: Heads sent alone on the loop's next turn (kept referenced until sent).
_HEADS: set[asyncio.Task[None]] = set()


class _Refused(Exception):
    """The connection was answered and closed; stop reading it."""


def install() -> None:
    """Make hypercorn build zengine's protocol and stream classes. Idempotent; called when a
    server starts (in each worker process), never at import time."""
    from zengine.server import hypercorn_tcp

    # read_timeout kept by a deadline per connection instead of a task and timer per read.
    hypercorn_tcp.install()
    module: Any
    for module in (hypercorn.protocol, hypercorn.protocol.h11):
        if getattr(module, "H11Protocol", None) is H11Protocol:
            module.H11Protocol = ZengineH11Protocol
    for module in (hypercorn.protocol.h11, hypercorn.protocol.h2):
        if getattr(module, "HTTPStream", None) is HTTPStream:
            module.HTTPStream = ZengineHTTPStream


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one; every connection holds a descriptor,
    and the common soft default (1,024) is what a few slow clients exhaust first. Returns the
    ``(soft, hard)`` limits now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # a container may refuse; the limit stays what the operator set
    return soft, hard


#: Longest User-Agent the access log keeps (a phone's login may land there; so may a flood).
USER_AGENT_CHARS = 96


class AccessLogger(hypercorn.logging.Logger):
    """Hypercorn's logger with access-log atoms made safe: the User-Agent cut to
    :data:`USER_AGENT_CHARS`, control characters escaped in every atom (the log pipeline
    escapes them again; this keeps the cut from splitting an escape)."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        """hypercorn's ``access``, but the line goes straight to zengine's line handler when
        nothing else would see the stdlib record (the usual setup): the same bytes as the
        stdlib ``LogRecord`` and ``ProcessorFormatter`` make, for about a third of the cost."""
        logger = self.access_logger
        if logger is None:
            return
        from zengine.logline import direct_handler, log_direct

        if direct_handler(logger, logging.INFO) is None:
            await super().access(request, response, request_time)
            return
        message = self.access_log_format % self.atoms(request, response, request_time)
        if not log_direct(logger, logging.INFO, message):
            logger.info("%s", message)

    def atoms(self, request: Any, response: Any, request_time: float) -> Mapping[str, str]:
        """Only the atoms zengine's format uses (``h r s b L a``, see
        :data:`zengine.server.hypercorn_engine.ACCESS_LOG_FORMAT`). hypercorn's own
        AccessLogAtoms copies every header and the whole process environment for every line,
        which cost more than the rest of the line."""
        from zengine.log import sanitise_text

        client = request.get("client")
        agent = length = "-"
        for name, value in request.get("headers", ()):
            if name.lower() == b"user-agent":
                agent = value.decode("latin1")
        for name, value in (response or {}).get("headers", ()):
            if name.lower() == b"content-length":
                length = value.decode("latin1")
        method = request["method"] if request.get("type") == "http" else "GET"
        line = f"{method} {request['path']} {request.get('http_version', 'ws')}"
        return _Atoms({
            "h": f"{client[0]}:{client[1]}" if client and len(client) == 2 else "-",
            "r": sanitise_text(line, limit=256),
            "s": str(response["status"]) if response is not None else "-",
            "b": length,
            "L": f"{request_time:.6f}",
            "a": sanitise_text(agent, limit=USER_AGENT_CHARS),
        })


class _Atoms(dict[str, str]):
    """Like hypercorn's atoms, ``-`` for anything not computed."""

    def __missing__(self, key: str) -> str:
        return "-"
