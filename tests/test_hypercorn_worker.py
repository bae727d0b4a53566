"""hypercorn's worker app (zengine.server.hypercorn_engine.lines_held): a request's lines and the
access line hypercorn logs from inside the app's last ``send`` go out in one write; the
lifespan (as long as the process) is not held."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from hypercorn.config import Config
from starlette.types import Message, Receive, Send

from tests.conftest import run_asgi, spy_writes
from zengine import http_layer
from zengine import log as zlog
from zengine.log import configure_logging
from zengine.server import hypercorn_engine
from zengine.settings import LoggingSettings


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="info"), stream=out)
    return out


def _access_logger() -> http_layer.AccessLogger:
    config = Config()
    config.accesslog = logging.getLogger("hypercorn.access")
    config.access_log_format = hypercorn_engine.ACCESS_LOG_FORMAT
    return http_layer.AccessLogger(config)


def test_a_requests_lines_and_its_access_line_are_one_write(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's capturing handlers on the root logger (set for the test's call) would send the
    # access line the stdlib way (they would see it): off, as in a server.
    monkeypatch.setattr(logging.getLogger(), "handlers", [zlog._Output.handler])
    writes = spy_writes(monkeypatch)
    access = _access_logger()
    scope = {"type": "http", "method": "GET", "path": "/id.php", "http_version": "1.1",
             "client": ("127.0.0.1", 5000), "query_string": b"password=hunter2", "headers": []}

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        structlog.get_logger("zengine.test").info("provision.request", status=200)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    async def send(message: Message) -> None:
        # As hypercorn's HTTPStream: the access line from inside the last send.
        if message["type"] == "http.response.body":
            await access.access(scope, {"status": 200, "headers": []}, 0.001)

    run_asgi(hypercorn_engine.lines_held(app), scope, send=send)
    assert len(writes) == 1, writes
    events = [json.loads(line) for line in writes[0].splitlines()]
    assert [e["logger"] for e in events] == ["zengine.test", "hypercorn.access"]
    assert "hunter2" not in writes[0]


def test_the_lifespan_is_not_held(stream: io.StringIO) -> None:
    seen: list[str] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        structlog.get_logger("zengine.test").info("zengine.started")
        # Written at once, not when the lifespan (the process) ends.
        seen.append(stream.getvalue())

    run_asgi(hypercorn_engine.lines_held(app), {"type": "lifespan"})
    assert '"zengine.started"' in seen[0]

