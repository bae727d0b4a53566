"""hypercorn's connection with one read deadline per connection (zengine.server.hypercorn_tcp):
the same timeout as hypercorn's ``wait_for`` per read, without a task and timer per read."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import Any

import hypercorn.asyncio.run
import pytest
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import AsyncioSingleTask
from hypercorn.config import Config
from hypercorn.events import Closed, RawData

from tests.conftest import EXAMPLE_CONFIG
from tests.serverproc import read_all, running_server
from zengine.server import hypercorn_tcp
from zengine.server.hypercorn_tcp import ZengineTCPServer


class _Protocol:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def handle(self, event: Any) -> None:
        self.events.append(event)


async def _connection(read_timeout: float | None) -> tuple[Any, asyncio.StreamReader, _Protocol]:
    loop = asyncio.get_running_loop()
    config = Config()
    # hypercorn annotates read_timeout int, but takes any number of seconds (its wait_for's).
    config.read_timeout = read_timeout  # type: ignore[assignment]
    reader = asyncio.StreamReader()
    server: Any = ZengineTCPServer.__new__(ZengineTCPServer)
    server.loop, server.config, server.reader = loop, config, reader
    server.protocol = _Protocol()
    server.idle_task = AsyncioSingleTask()
    return server, reader, server.protocol


def _count_timers(monkeypatch: pytest.MonkeyPatch, longer_than: float) -> list[float]:
    """The timers set from now on for more than ``longer_than`` seconds ahead."""
    loop = asyncio.get_running_loop()
    calls: list[float] = []
    real = loop.call_at

    def counting(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if when - loop.time() > longer_than:
            calls.append(when)
        return real(when, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    return calls


def test_a_silent_client_is_dropped_after_read_timeout() -> None:
    async def main() -> tuple[float, list[Any]]:
        server, reader, protocol = await _connection(0.2)
        reader.feed_data(b"GET / HTTP/1.1\r\n")
        start = asyncio.get_running_loop().time()
        await asyncio.wait_for(server._read_data(), 5)
        return asyncio.get_running_loop().time() - start, protocol.events

    took, events = asyncio.run(main())
    assert 0.15 < took < 2, took
    assert isinstance(events[0], RawData) and isinstance(events[-1], Closed)


def test_each_read_has_its_own_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads 0.04 s apart for 2.4 s with a 1 s read timeout: never cut off, and the timer
    set a few times over the connection's life, not once per read (hypercorn: a task and a
    timer for each). (At 0.3 s a stall of the process cut it: stalls of 0.5 s were measured
    on a loaded CI box, GC or a busy CPU.)"""

    async def main() -> tuple[list[Any], list[float], bool]:
        timers = _count_timers(monkeypatch, 0.1)  # not the test's sleeps
        server, reader, protocol = await _connection(1.0)
        task = asyncio.ensure_future(server._read_data())
        for _ in range(60):
            reader.feed_data(b"x")
            await asyncio.sleep(0.04)
        reader.feed_eof()
        await asyncio.wait_for(task, 5)
        return protocol.events, timers, task.cancelled()

    events, timers, cancelled = asyncio.run(main())
    assert not cancelled
    assert sum(len(e.data) for e in events if isinstance(e, RawData)) == 60
    assert isinstance(events[-1], Closed)
    assert len(timers) <= 8, len(timers)


def test_someone_elses_cancellation_is_passed_on() -> None:
    async def main() -> tuple[bool, list[Any]]:
        server, _reader, protocol = await _connection(30)
        task = asyncio.ensure_future(server._read_data())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled(), protocol.events

    cancelled, events = asyncio.run(main())
    assert cancelled and events == []


def test_without_read_timeout_hypercorns_own_loop_runs() -> None:
    async def main() -> list[Any]:
        server, reader, protocol = await _connection(None)
        reader.feed_data(b"abc")
        reader.feed_eof()
        await asyncio.wait_for(server._read_data(), 5)
        return protocol.events

    events = asyncio.run(main())
    assert [type(e) for e in events] == [RawData, Closed]


def test_install_replaces_hypercorns_connection_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypercorn.asyncio.run, "TCPServer", TCPServer)
    hypercorn_tcp.install()
    hypercorn_tcp.install()
    module: Any = hypercorn.asyncio.run  # TCPServer is imported there, not exported
    assert module.TCPServer is ZengineTCPServer


def test_keep_alive_sets_one_timer_and_no_task_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """100 requests (stop: a request under way; restart: idle again) on one connection: no
    task, and the keep-alive timer set once or twice (hypercorn's idle task: two tasks and a timer
    per request); idle past keep_alive_timeout, the connection is closed."""
    from hypercorn.asyncio.worker_context import WorkerContext

    from zengine.server.hypercorn_tcp import KeepAlive

    async def main() -> tuple[int, list[float], list[str]]:
        loop = asyncio.get_running_loop()
        closed: list[str] = []
        server: Any = type("Server", (), {})()
        server.loop, server.context, server.config = loop, WorkerContext(None), Config()
        server.config.keep_alive_timeout = 0.3
        server._initiate_server_close = object()

        def spawn(_group: object, func: object) -> None:
            if func is server._initiate_server_close:
                closed.append("x")

        server._task_group = type("Group", (), {"spawn": spawn})()
        keep_alive = KeepAlive(server)
        await asyncio.sleep(0)
        tasks = len(asyncio.all_tasks())
        timers = _count_timers(monkeypatch, 0.1)
        for _ in range(100):
            await keep_alive.stop()
            await keep_alive.restart(None, None)
        made = len(asyncio.all_tasks()) - tasks
        assert closed == []
        for _ in range(60):  # closed 0.3 s after the last restart, on a busy machine later
            if closed:
                break
            await asyncio.sleep(0.05)
        return made, timers, closed

    made, timers, closed = asyncio.run(main())
    # (set once more when it fires just before the last deadline)
    assert made == 0 and len(timers) <= 2 and closed == ["x"]


def _one_request(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    with sock.makefile("rb") as stream:
        assert stream.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert len(stream.read(length)) == length


@pytest.mark.subprocess
def test_an_idle_connection_is_closed_after_keep_alive_timeout(tmp_path: Path) -> None:
    """hypercorn's keep_alive_timeout (5 s), from the connection's one timer: each response
    moves it, a connection idle that long is closed."""
    with running_server(EXAMPLE_CONFIG, tmp_path) as srv, \
            socket.create_connection(srv.address, timeout=10) as sock:
        for _ in range(3):  # 2 s apart: 6 s in all, never idle for 5
            _one_request(sock)
            time.sleep(2)
        _one_request(sock)
        start = time.monotonic()
        assert read_all(sock) == b""
        assert 4 < time.monotonic() - start < 8


@pytest.mark.subprocess
def test_stopping_the_server_closes_its_idle_connections_at_once(tmp_path: Path) -> None:
    with running_server(EXAMPLE_CONFIG, tmp_path) as srv, \
            socket.create_connection(srv.address, timeout=10) as answered, \
            socket.create_connection(srv.address, timeout=10) as silent:
        _one_request(answered)
        time.sleep(0.2)
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert read_all(answered) == b"" and read_all(silent) == b""
        srv.proc.wait(timeout=10)
        # Not after graceful_timeout (5 s), when hypercorn cancels what is left.
        assert time.monotonic() - start < 3


def _h11_protocol(sent: list[Any]) -> Any:
    from hypercorn.asyncio.worker_context import WorkerContext

    from zengine.http_layer import ZengineH11Protocol

    async def send(event: Any) -> None:
        sent.append(event)

    return ZengineH11Protocol(None, Config(), WorkerContext(None), None, None, False,
                              ("127.0.0.1", 1), ("127.0.0.1", 2), send)


def test_a_responses_head_and_body_are_one_write() -> None:
    """hypercorn wrote the head and the body of a response apart (two send() calls)."""
    from hypercorn.protocol.events import Body, EndBody, Response

    async def main() -> list[Any]:
        sent: list[Any] = []
        protocol = _h11_protocol(sent)
        protocol.connection.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        protocol.connection.next_event()
        await protocol.stream_send(Response(stream_id=1, status_code=200,
                                            headers=[(b"content-length", b"4")]))
        await protocol.stream_send(Body(stream_id=1, data=b"body"))
        await protocol.stream_send(EndBody(stream_id=1))
        await asyncio.sleep(0)
        return sent

    sent = asyncio.run(main())
    writes = [e.data for e in sent if isinstance(e, RawData) and e.data]
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 ") and writes[0].endswith(b"\r\n\r\nbody")


def test_a_head_does_not_wait_for_a_slow_body() -> None:
    from hypercorn.protocol.events import Body, EndBody, Response

    async def main() -> tuple[list[bytes], list[bytes]]:
        sent: list[Any] = []
        protocol = _h11_protocol(sent)
        protocol.connection.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        protocol.connection.next_event()
        await protocol.stream_send(Response(stream_id=1, status_code=200, headers=[]))
        await asyncio.sleep(0.05)  # the app is still making its (chunked) body
        early = [e.data for e in sent if isinstance(e, RawData)]
        await protocol.stream_send(Body(stream_id=1, data=b"late"))
        await protocol.stream_send(EndBody(stream_id=1))
        return early, [e.data for e in sent if isinstance(e, RawData)]

    early, writes = asyncio.run(main())
    assert len(early) == 1 and early[0].startswith(b"HTTP/1.1 200 ")
    assert b"".join(writes[1:]) == b"4\r\nlate\r\n0\r\n\r\n"


def test_a_closing_connections_keep_alive_timer_is_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection whose reads ended while the app was still answering (read_timeout passed
    during a slow request) goes idle again after the response; then its TLS close waits for
    the client's close_notify. Its keep-alive timer kept running meanwhile and fired into the
    finished task group ("Exception in callback KeepAlive._fire": RuntimeError, TaskGroup is
    finished; a coroutine never awaited), and at the worker's stop the same error ended the
    task that closes every idle connection."""
    import ssl

    import trustme
    from hypercorn.asyncio import serve

    monkeypatch.setattr(hypercorn.asyncio.run, "TCPServer", ZengineTCPServer)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    config.read_timeout = 0.2  # type: ignore[assignment]
    config.keep_alive_timeout = 0.4
    config.accesslog = config.errorlog = None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(0.5)  # past read_timeout: the reads end meanwhile
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def client() -> None:
        # Never reads, never closes before the keep-alive timeout: the server's TLS close
        # waits for its close_notify.
        with trust.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                               server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(1.5)

    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        stop = asyncio.Event()
        server = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))
        for _ in range(100):  # until it listens
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
            else:
                writer.close()
                break
        await asyncio.to_thread(client)
        stop.set()
        await asyncio.wait_for(server, 10)
        return errors

    errors = asyncio.run(main())
    assert errors == [], [e.get("message") for e in errors]


class _KeepAliveState:
    """What a read deadline asks of the connection's keep-alive timer."""

    def __init__(self) -> None:
        self.busy = True
        self.since = 0.0

    def answering(self) -> bool:
        return self.busy

    def idle_since(self) -> float:
        return self.since


def test_a_request_being_answered_is_not_silence() -> None:
    """A read waiting while the app answers (a backend slower than read_timeout) is not cut:
    the client owes nothing until its answer, and cutting it lost the answer (seen under load:
    a cold login slower than read_timeout = 1 s came back empty). Once the response is sent,
    silence counts from its end, and the deadline cuts as before."""

    async def main() -> tuple[bool, float, bool]:
        loop = asyncio.get_running_loop()
        state = _KeepAliveState()
        read = asyncio.ensure_future(asyncio.sleep(30))
        deadline = hypercorn_tcp.ReadDeadline(loop, 0.1, read, state)  # type: ignore[arg-type]
        deadline.start()
        await asyncio.sleep(0.5)  # five timeouts while the request is answered
        cut_while_answering = read.done()
        state.busy, state.since = False, loop.time()  # the response went out just now
        start = loop.time()
        await asyncio.gather(read, return_exceptions=True)
        took = loop.time() - start
        return cut_while_answering, took, deadline.expired()

    cut_while_answering, took, expired = asyncio.run(main())
    assert not cut_while_answering
    assert 0.05 < took < 2, took
    assert expired
