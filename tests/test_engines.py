"""Every ``[server] engine`` serves the same bytes; a missing optional engine is a clear error."""

from __future__ import annotations

import base64
import logging
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.serverproc import running_server
from zengine.errors import ConfigError
from zengine.server import load_engine
from zengine.server.uvicorn_engine import StripQuery

REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/id.php?username=alice&password=wonderland&version=1.14", {}),
    ("GET", "/id.php?username=alice&password=wonderland", {}),
    ("GET", "/provision?u=bob&p=builder&v=3.0", {}),
    ("GET", "/desktop?username=alice&password=wonderland", {}),
    ("GET", "/id.php?username=alice&password=wrong&version=1.14", {}),
    ("GET", "/id.php?username=alice&version=1.14", {}),
    ("GET", "/id.php?password=a&password=b", {}),
    ("GET", "/id.php",
     {"Authorization": "Basic " + base64.b64encode(b"bob:builder").decode()}),
    ("GET", "/nowhere", {}),
    ("PUT", "/id.php", {}),
]
ENGINES = ("hypercorn", "granian", "uvicorn")
KEPT_HEADERS = ("content-type", "cache-control", "pragma", "x-content-type-options", "allow")


def _responses(base: str) -> list[tuple[int, dict[str, str], bytes]]:
    seen = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for method, url, headers in REQUESTS:
            response = client.request(method, url, headers=headers)
            kept = {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers}
            seen.append((response.status_code, kept, response.content))
    return seen


@pytest.mark.subprocess
def test_engines_serve_the_same_bytes(tmp_path: Path) -> None:
    results = {}
    for engine in ENGINES:
        # A zero floor: the failed logins above need not wait 400 ms each.
        with running_server(EXAMPLE_CONFIG, tmp_path, env={
                "ZENGINE_SERVER__ENGINE": engine, "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}) as server:
            results[engine] = _responses(server.base)
    reference = results["hypercorn"]
    assert [status for status, _, _ in reference][:9] == [200, 200, 200, 200, 200, 200, 400,
                                                          200, 404]
    assert reference[9][0] in (404, 405)  # PUT: refused either way; the engines must agree
    assert b"<account>" in reference[0][2] and b"<error" in reference[4][2]
    for engine in ENGINES[1:]:
        for sent, mine, theirs in zip(REQUESTS, results[engine], reference, strict=True):
            assert mine == theirs, f"{engine} differs from hypercorn for {sent[0]} {sent[1]}"


def test_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "granian", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"engine = 'granian'.*zengine\[fast\]"):
        load_engine("granian")


def test_uvicorn_access_line_loses_its_query_string() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/id.php?password=s3cret", "1.1", 200),
                               None)
    assert StripQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /id.php HTTP/1.1" 200'


def test_hypercorn_workers_get_listening_sockets_of_their_own(tmp_path: Path) -> None:
    """Several hypercorn workers on a fixed port each accept from their own SO_REUSEPORT
    socket (the kernel spreads connections over them); a unix socket or port 0 stays one
    socket shared by all, as hypercorn has it."""
    import socket

    from hypercorn.config import Config

    from zengine.server.hypercorn_engine import worker_sockets

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    config = Config()
    config.workers = 3
    config.bind = [f"127.0.0.1:{port}"]
    sets = worker_sockets(config)
    try:
        listeners = [s.insecure_sockets[0] for s in sets]
        assert len({id(sock) for sock in listeners}) == 3
        assert {sock.getsockname()[1] for sock in listeners} == {port}
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in listeners)
    finally:
        for s in sets:
            for sock in s.insecure_sockets:
                sock.close()
    for bind in ("127.0.0.1:0", f"unix:{tmp_path / 'z.sock'}"):
        config.bind = [bind]
        sets = worker_sockets(config)
        try:
            assert len(sets) == 3 and all(s is sets[0] for s in sets)
        finally:
            for sock in sets[0].insecure_sockets:
                sock.close()
    config.workers = 1
    config.bind = [f"127.0.0.1:{port}"]
    sets = worker_sockets(config)
    assert len(sets) == 1
    for sock in sets[0].insecure_sockets:
        sock.close()
