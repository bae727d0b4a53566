"""What the HTTP layer answers below the app, over raw sockets against the real server: every
client mistake is a 4xx ``<error>`` document with ``no-store``, never a 5xx or an empty body;
no redirect echoes the query; no HTTP/2 or WebSocket on cleartext; slow bodies are cut off."""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.serverproc import Server, parse_response, read_all, running_server
from zengine.http_layer import _MESSAGES, is_api_target

pytestmark = pytest.mark.subprocess

LOGIN = b"/id.php?u=alice&p=wonderland&v=1.14"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(EXAMPLE_CONFIG, tmp_path_factory.mktemp("http"),
                        env={"ZENGINE_SERVER__BODY_TIMEOUT": "2"}) as srv:
        yield srv


def _assert_error_document(raw: bytes, status: int) -> dict[str, str]:
    got, headers, body = parse_response(raw)
    assert got == status, raw[:300]
    assert headers["content-type"].startswith("application/xml"), headers
    assert headers["cache-control"] == "no-store", headers
    assert body.startswith(b"<?xml") and b"<error" in body, body
    return headers


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"GET /id.php HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                 id="te-gzip"),
    pytest.param(b"GET /id.php HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
                 id="te-identity"),
    pytest.param(b"GET /id.php HTTP/1.1\r\n\r\n", id="no-host"),
    pytest.param(b"GET /id.php HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
    pytest.param("GET /id.php?u=\u00e9 HTTP/1.1\r\nHost: a\r\n\r\n".encode(), id="raw-utf8-url"),
    pytest.param(b"GARBAGE\r\n\r\n", id="no-request-line"),
    pytest.param(b"GET /id.php HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", id="bad-length"),
    pytest.param(b"GET /id.php HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n", id="bad-header"),
])
def test_malformed_http_is_a_400_error_document(server: Server, request_bytes: bytes) -> None:
    headers = _assert_error_document(server.raw(request_bytes), 400)
    assert headers["connection"] == "close"


def test_huge_headers_are_a_431_error_document(server: Server) -> None:
    raw = server.raw(b"GET /id.php HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    _assert_error_document(raw, 431)


@pytest.mark.parametrize("path", [b"/id.php/", b"/provision/", b"/desktop/"])
def test_trailing_slash_is_a_404_without_a_redirect(server: Server, path: bytes) -> None:
    raw = server.raw(b"GET " + path + b"?u=alice&p=wonderland HTTP/1.1\r\nHost: evil.example\r\n"
                     b"Connection: close\r\n\r\n")
    headers = _assert_error_document(raw, 404)
    assert "location" not in headers
    assert b"wonderland" not in raw and b"evil.example" not in raw


def test_http2_prior_knowledge_is_refused(server: Server) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    _assert_error_document(server.raw(preface), 400)


def test_h2c_upgrade_is_ignored_and_answered_in_http1(server: Server) -> None:
    raw = server.raw(b"GET " + LOGIN + b" HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, "
                     b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
                     b"Connection: close\r\n\r\n")
    status, headers, body = parse_response(raw)
    assert status == 200 and b"<account>" in body
    assert "upgrade" not in headers


def test_websocket_upgrade_is_answered_as_plain_http(server: Server) -> None:
    raw = server.raw(b"GET " + LOGIN + b" HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    status, headers, body = parse_response(raw)
    assert status == 200 and b"<account>" in body, raw[:300]
    assert headers["cache-control"] == "no-store"


def test_slow_body_is_cut_off_after_body_timeout(server: Server) -> None:
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"POST /id.php HTTP/1.1\r\nHost: a\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 200\r\n\r\n")
        start = time.monotonic()
        sock.setblocking(False)
        answer = b""
        # One byte every 0.3 s: never silent long enough for read_timeout (30 s).
        while time.monotonic() - start < 8 and not answer:
            try:
                sock.send(b"u")
                answer = sock.recv(65536)
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.3)
        elapsed = time.monotonic() - start
        sock.setblocking(True)
        sock.settimeout(3)
        answer += read_all(sock)
    headers = _assert_error_document(answer, 408)
    assert headers["connection"] == "close"
    assert 1.5 < elapsed < 4, elapsed


def test_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 512:
        pytest.fail(f"hard open-file limit {hard} too low for this test")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))

    with running_server(EXAMPLE_CONFIG, tmp_path, preexec_fn=low_soft_limit) as srv:
        limits = Path(f"/proc/{srv.proc.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert int(line.split()[3]) > 128, line
        # More idle connections than the soft limit the server started with: a normal
        # client is still answered.
        held = [socket.create_connection(srv.address) for _ in range(200)]
        try:
            status, _, body = parse_response(srv.raw(
                b"GET " + LOGIN + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
            assert status == 200 and b"<account>" in body
        finally:
            for sock in held:
                sock.close()


def test_incomplete_request_gets_an_answer_not_silence(server: Server) -> None:
    # The client stops half-way through its headers (here: closes its side).
    _assert_error_document(server.raw(b"GET /id.php?u=alice HTTP/1.1\r\nHost: a\r\nX-Y"), 408)


@pytest.mark.parametrize("engine", ["granian", "uvicorn"])
def test_no_http2_on_cleartext_with_the_other_engines(tmp_path: Path, engine: str) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    upgrade = (b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n")
    with running_server(EXAMPLE_CONFIG, tmp_path,
                        env={"ZENGINE_SERVER__ENGINE": engine}) as srv:
        answer = srv.raw(preface, timeout=3)
        # Refused or closed, never an HTTP/2 SETTINGS frame (type 0x04 in the 4th byte).
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:40]
        assert not srv.raw(upgrade, timeout=3).startswith(b"HTTP/1.1 101")


def _assert_problem(raw: bytes, status: int) -> dict[str, str]:
    got, headers, body = parse_response(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/problem+json", headers
    assert headers["cache-control"] == "no-store" and headers["connection"] == "close", headers
    assert json.loads(body) == {"type": "about:blank", "title": HTTPStatus(status).phrase,
                                "status": status, "detail": _MESSAGES[status]}
    return headers


def test_huge_headers_on_the_api_are_a_431_problem_document(server: Server) -> None:
    """The admin API's clients parse RFC 9457 problems, not Zoiper's XML: the HTTP layer's
    own answers below /api/ are problems too (the API need not even be enabled)."""
    big = b"a" * 70000
    raw = server.raw(b"GET /api/v1/users HTTP/1.1\r\nHost: a\r\nX-Big: " + big + b"\r\n\r\n")
    _assert_problem(raw, 431)
    # A request line too long for the buffer, the key in its query: the same, and no echo.
    raw = server.raw(b"GET /api/v1/users?q=" + big + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    _assert_problem(raw, 431)
    assert big[:64] not in raw
    # Not below /api/: the error document, unchanged.
    _assert_error_document(server.raw(b"GET /apiary HTTP/1.1\r\nHost: a\r\nX-Big: " + big
                                      + b"\r\n\r\n"), 431)


@pytest.mark.parametrize(("head", "api"), [
    (b"GET /api/v1/users HTTP/1.1\r\n", True),
    (b"\r\n\r\nPOST /api/v1/tokens", True),
    (b"GET /api/", True),
    (b"GET /api HTTP/1.1", False),
    (b"GET /id.php?next=/api/ HTTP/1.1", False),
    (b"GET http://a/api/v1 HTTP/1.1", False),
    (b"", False),
    (b"GARBAGE", False),
])
def test_is_api_target_reads_the_raw_request_line(head: bytes, api: bool) -> None:
    assert is_api_target(head) is api


def test_read_timeout_cuts_a_silent_request_but_not_a_busy_connection(tmp_path: Path) -> None:
    """Each read waits at most read_timeout (one deadline per connection, moved by every read:
    zengine.server.hypercorn_tcp): a client silent half-way through its headers gets a 408,
    one that keeps sending requests on a keep-alive connection is never cut off."""
    request = b"GET " + LOGIN + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    # read_timeout 2 s with requests 0.3 s apart: a stall of the client (0.5 s measured on a
    # loaded CI box) cannot make it silent for read_timeout (at 1 s with 0.6 s apart, it could).
    with running_server(EXAMPLE_CONFIG, tmp_path,
                        env={"ZENGINE_SERVER__READ_TIMEOUT": "2"}) as srv:
        with socket.create_connection(srv.address, timeout=10) as sock:
            start = time.monotonic()
            sock.sendall(b"GET /id.php HTTP/1.1\r\nHost: a\r\n")  # and then nothing
            answer = read_all(sock)
            elapsed = time.monotonic() - start
        _assert_error_document(answer, 408)
        # Answered and closed at read_timeout, not held open until keep_alive_timeout (5 s).
        assert 1.8 < elapsed < 4.5, elapsed
        with socket.create_connection(srv.address, timeout=10) as sock, \
                sock.makefile("rb") as stream:
            # 0.3 s apart for 3 s: past the first read's deadline, never silent for 2 s.
            for _ in range(10):
                sock.sendall(request)
                status = stream.readline()
                assert status.startswith(b"HTTP/1.1 200"), status
                length = 0
                while (line := stream.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                assert b"<account>" in stream.read(length)
                time.sleep(0.3)
