"""The one-pass JSON line (zengine.log.render_json) is the full processor chain's line, byte
for byte: for zengine's structlog events and for hypercorn's access line sent straight to the
line handler. Only the timestamp differs between two lines, and it is compared by format."""

from __future__ import annotations

import contextvars
import datetime
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from starlette.types import Message, Receive, Send

from tests.conftest import run_asgi, spy_writes
from zengine import log as zlog
from zengine import logline
from zengine.log import configure_logging
from zengine.logline import direct_handler, render_json
from zengine.settings import LoggingSettings

_STAMP = re.compile(r'"timestamp": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z)"')

class _Text(str):
    pass


class _Number(int):
    def __repr__(self) -> str:
        return "not JSON"


CASES: list[dict[str, Any]] = [
    {"outcome": "served", "status": 200, "error": None, "username": "alice",
     "account_count": 2, "duration_ms": 0.31, "ok": True},
    {"detail": "bad login password=hunter2&x=1", "note": "Authorization: Basic c2VjcmV0"},
    {"password": "hunter2", "token": "", "secret": None, "p": 0, "bind_password": "x",
     "query": "username=a&password=b"},
    {"value": SecretStr("s3cret"), "nested": {"password": "x", "ok": "a\x1bb", 3: [1, "y"]},
     "items": ["a\nb", ("password=1", None)], "raw": b"\xff\x00ab", "where": Path("/tmp/x")},
    {"long": "z" * 2000, "ctl": "line\r\nforged", "bidi": "a\u202eb", "k\x1bey": "v"},
    {"path": "/overridden", "client_addr": "203.0.113.1"},
    # Values whose JSON skips the encoder (str, int, bool, None, finite floats) and those
    # that do not; a "timestamp" or "level" field is overwritten where it stands.
    {"f": 0.1, "inf": float("inf"), "ninf": float("-inf"), "nan": float("nan"), "z": -0.0,
     "big": 10**30, "no": False, "e": logging.INFO, "name": _Text("sub"), "n": _Number(7),
     "u": "caf\u00e9 \u65e5\u672c", "timestamp": "mine", "level": "mine"},
]


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="debug"), stream=out)
    return out


def _chain_line(method: str, event: str, fields: dict[str, Any]) -> str:
    """What the full chain (before the one-pass renderer) makes of the same event."""
    logger = zlog.DirectLogger("zengine.test")
    # structlog's order: the keyword arguments, then the event.
    result: Any = {**fields, "event": event}
    for processor in zlog._Output.chain:
        result = processor(logger, method, result)
    assert isinstance(result, str)
    return result


def _same(fast: str, slow: str) -> None:
    assert _STAMP.search(fast) and _STAMP.search(slow), (fast, slow)
    assert _STAMP.sub("T", fast) == _STAMP.sub("T", slow)


@pytest.mark.parametrize("fields", CASES)
@pytest.mark.parametrize("method", ["info", "warning", "warn", "debug"])
def test_structlog_event_matches_the_full_chain(stream: io.StringIO, fields: dict[str, Any],
                                                method: str) -> None:
    with structlog.contextvars.bound_contextvars(request_id="r1", path="/id.php",
                                                 client_addr="192.0.2.1"):
        getattr(structlog.get_logger("zengine.test"), method)("some.event", **fields)
        slow = _chain_line(method, "some.event", dict(fields))
    fast = stream.getvalue().rstrip("\n")
    assert "\n" not in fast
    _same(fast, slow)
    assert "hunter2" not in fast and "s3cret" not in fast


def test_context_values_named_like_the_added_keys_match_too(stream: io.StringIO) -> None:
    bound = {"timestamp": "bound", "level": "bound", "user": "alice", "password": "pw"}
    with structlog.contextvars.bound_contextvars(**bound):
        structlog.get_logger("zengine.test").info("ctx.event", n=1.5)
        slow = _chain_line("info", "ctx.event", {"n": 1.5})
    _same(stream.getvalue().rstrip("\n"), slow)
    assert '"user": "alice"' in slow and "pw" not in slow


def test_repeated_lines_match_too(stream: io.StringIO) -> None:
    """The second line of a kind is built from kept fragments: still the chain's bytes, and
    a redacted value is never kept."""
    fields = {"username": "alice", "count": 1, "flag": True, "none": None, "password": "pw1",
              "detail": "token=abc"}
    for _ in range(3):
        structlog.get_logger("zengine.test").info("again", **fields)
    slow = _chain_line("info", "again", dict(fields))
    for line in stream.getvalue().splitlines():
        _same(line, slow)
    kept = " ".join(f for table in logline._FRAGMENTS.values() for f in table.values()) \
        + repr([list(table) for table in logline._FRAGMENTS.values()])
    assert "pw1" not in kept and "abc" not in kept and '"count": 1' in kept
    # 1 and True are equal (and hash alike) in Python, not in JSON.
    structlog.get_logger("zengine.test").info("again", count=True, flag=1)
    assert '"count": true, "flag": 1' in stream.getvalue().splitlines()[-1]


@pytest.mark.parametrize("ns", [0, 1_764_657_000_000_000_000, 1_764_657_000_123_456_789,
                                1_764_657_059_999_999_999, 1_764_657_060_000_001_000])
def test_timestamp_is_structlogs_format(ns: int) -> None:
    seconds, rest = divmod(ns, 1_000_000_000)
    expected = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(
        microsecond=rest // 1000).isoformat().replace("+00:00", "Z")
    assert logline.iso_utc(ns) == expected


def test_tracebacks_take_the_full_chain(stream: io.StringIO) -> None:
    try:
        raise ValueError("password=hunter2")
    except ValueError:
        structlog.get_logger("zengine.test").exception("crash")
    line = stream.getvalue()
    assert '"exception": "Traceback' in line and "hunter2" not in line
    assert render_json("x", "info", {"event": "e", "exc_info": True}) is None


def test_console_format_takes_the_full_chain() -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="console", level="info"), stream=out)
    assert render_json("x", "info", {"event": "e"}) is None
    structlog.get_logger("zengine.test").info("some.event", password="hunter2")
    assert "some.event" in out.getvalue() and "hunter2" not in out.getvalue()


def test_access_line_straight_to_the_handler_matches_stdlib(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from hypercorn.config import Config

    from zengine import http_layer

    config = Config()
    config.accesslog = logging.getLogger("hypercorn.access")
    config.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'
    access = http_layer.AccessLogger(config)
    logger = access.access_logger
    assert logger is not None  # config.accesslog set above
    root = logging.getLogger()
    # pytest's own capturing handlers sit on the root logger during a test: with them the
    # record must go the stdlib way (they would see it), so they are taken off here.
    assert direct_handler(logger, logging.INFO) is None or root.handlers == [
        zlog._Output.handler]
    monkeypatch.setattr(root, "handlers", [zlog._Output.handler])
    assert direct_handler(logger, logging.INFO) is zlog._Output.handler
    request = {"type": "http", "method": "GET", "path": "/id.php", "http_version": "1.1",
               "client": ("127.0.0.1", 5000), "query_string": b"password=hunter2",
               "headers": [(b"user-agent", b"Zoiper \x1b[2J password=x")]}
    response = {"status": 200, "headers": [(b"content-length", b"12")]}
    asyncio.run(access.access(request, response, 0.25))
    # (asyncio's own debug line about its selector comes first)
    fast = stream.getvalue().splitlines(keepends=True)[-1]
    stream.seek(0)
    stream.truncate()
    # The stdlib way: a LogRecord through the ProcessorFormatter.
    logger.info(access.access_log_format, access.atoms(request, response, 0.25))
    slow = stream.getvalue()
    assert fast.count("\n") == slow.count("\n") == 1
    _same(fast, slow)
    assert "hunter2" not in fast and "password=x" not in fast
    # Another handler on the way: the stdlib record again, seen by both.
    extra = logging.StreamHandler(io.StringIO())
    logger.addHandler(extra)
    try:
        assert direct_handler(logger, logging.INFO) is None
    finally:
        logger.removeHandler(extra)
    logger.setLevel(logging.WARNING)
    try:
        assert direct_handler(logger, logging.INFO) is None
    finally:
        logger.setLevel(logging.NOTSET)


def test_granian_access_line_written_by_zengine_matches_granians_own(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """granian's own access line (its builder, through the stdlib record) and zengine's
    (access_logged, straight to the handler): the same bytes, never the query string."""
    import time

    import granian.log

    from zengine.server import granian_engine

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [zlog._Output.handler])
    logging.getLogger("granian.access").handlers[:] = []
    logging.getLogger("granian.access").propagate = True
    # granian.log has no annotations.
    write = granian.log.log_request_builder(  # type: ignore[no-untyped-call]
        granian_engine.ACCESS_LOG_FORMAT)
    request = {"addr_remote": "127.0.0.1", "protocol": "HTTP/1.1", "path": "/id.php",
               "qs": "password=hunter2", "method": "GET", "scheme": "http"}
    write(time.time(), time.perf_counter(), request, 200)
    theirs = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    sent: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x"})

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "client": ("127.0.0.1", 5555), "method": "GET",
             "path": "/id.php", "query_string": b"password=hunter2", "http_version": "1.1"}
    run_asgi(granian_engine.access_logged(app), scope, send=send)
    # (asyncio's own debug line about its selector may come first)
    ours = "".join(line for line in stream.getvalue().splitlines(keepends=True)
                   if '"granian.access"' in line)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    slow, fast = (re.sub(r"\d+\.\d{3}ms", "Xms", line) for line in (theirs, ours))
    assert fast.count("\n") == 1
    _same(fast, slow)
    assert "hunter2" not in fast and '"GET /id.php HTTP/1.1\\" 200' in fast


def test_granian_access_line_of_a_failed_request_and_of_the_masked_path(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that raises before answering: granian answers 500, and so says the line; the
    path is the one the app left in the scope (a masked /t/<key>/), read after it ran."""

    from zengine.server import granian_engine

    monkeypatch.setattr(logging.getLogger(), "handlers", [zlog._Output.handler])

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        scope["path"] = "/t/~/id.php"
        raise RuntimeError("boom")

    scope = {"type": "http", "client": ("192.0.2.1", 5555), "method": "GET",
             "path": "/t/secret-key/id.php", "http_version": "1.1"}
    with pytest.raises(RuntimeError):
        run_asgi(granian_engine.access_logged(app), scope)
    (line,) = [json.loads(line) for line in stream.getvalue().splitlines()
               if '"granian.access"' in line]
    assert line["logger"] == "granian.access" and line["level"] == "info"
    assert re.fullmatch(r'192\.0\.2\.1 "GET /t/~/id\.php HTTP/1\.1" 500 \d+\.\d{3}ms',
                        line["event"]), line


def test_held_lines_go_out_together_whole_and_in_order(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = spy_writes(monkeypatch)
    log = structlog.get_logger("zengine.test")
    with zlog.held_lines():
        log.info("one", n=1)
        log.info("two", n=2)
        assert stream.getvalue() == "" and writes == []
        # Longer than one held write (values are cut at 512 characters: many of them).
        log.info("big", **{f"blob{n}": "x" * 500 for n in range(zlog.HELD_MAX // 500 + 1)})
        log.info("three", n=3)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["one", "two", "big", "three"]
    assert len(writes) == 3 and all(len(w) <= zlog.HELD_MAX or w.count("\n") == 1
                                    for w in writes)
    assert writes[0].count("\n") == 2  # "one" and "two" in one write
    # Outside a block every line is written at once.
    log.info("four")
    assert stream.getvalue().splitlines()[-1].startswith('{"event": "four"')


def _events(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


def test_a_warning_is_never_held(stream: io.StringIO) -> None:
    log = structlog.get_logger("zengine.test")
    with zlog.held_lines():
        log.info("held")
        log.warning("urgent")
        assert _events(stream) == ["urgent"]
    assert _events(stream) == ["urgent", "held"]


def test_held_lines_of_a_request_abandoned_at_its_deadline_go_out_then(
        stream: io.StringIO) -> None:
    """Review of 9135513: a request's thread abandoned at the deadline held its lines (audit
    included) until it ended, late, or never if it never did. Released (what the long path
    does at the deadline), they go out at once, and the thread's later lines too."""
    import threading

    log = structlog.get_logger("zengine.test")
    logged, answered, done = threading.Event(), threading.Event(), threading.Event()
    contexts: list[contextvars.Context] = []

    def request() -> None:
        with zlog.held_lines():
            contexts.append(contextvars.copy_context())
            log.info("audit.login")
            logged.set()
            assert answered.wait(10)
            log.info("provision.request")  # the abandoned thread's late line
            done.set()
            assert answered.wait(10)

    thread = threading.Thread(target=request)
    thread.start()
    try:
        assert logged.wait(10)
        assert _events(stream) == []
        zlog.release_held(contexts[0])  # answered at the deadline
        assert _events(stream) == ["audit.login"]
        answered.set()
        assert done.wait(10)
        assert _events(stream) == ["audit.login", "provision.request"]
    finally:
        answered.set()
        thread.join(10)


def test_a_line_from_another_thread_sharing_the_context_is_not_lost(
        stream: io.StringIO) -> None:
    """A context copied into another thread shares the block's buffer: its lines were
    appended there and lost when they came after the block's write. Written at once now."""
    import threading

    log = structlog.get_logger("zengine.test")
    with zlog.held_lines():
        context = contextvars.copy_context()
        log.info("mine")
    thread = threading.Thread(target=context.run, args=(lambda: log.info("late"),))
    thread.start()
    thread.join(10)
    assert _events(stream) == ["mine", "late"]
    inside = threading.Event()
    with zlog.held_lines():
        context = contextvars.copy_context()

        def other() -> None:
            log.info("other thread")
            inside.set()

        thread = threading.Thread(target=context.run, args=(other,))
        thread.start()
        assert inside.wait(10)
        assert _events(stream)[-1] == "other thread"  # not held in this thread's block
    thread.join(10)
    assert _events(stream) == ["mine", "late", "other thread"]


def test_access_lines_are_not_kept_in_the_fragment_cache(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each access line is unique (it carries the request's time): kept, they only thrashed
    the cache of repeated fields. Events' repeated names are still kept."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [zlog._Output.handler])
    access = logging.getLogger("hypercorn.access")
    line = '127.0.0.1 "GET /id.php" 200 0.25s'
    assert logline.log_direct(access, logging.INFO, line)
    assert "GET /id.php" in stream.getvalue()
    assert ("event", line) not in logline._FRAGMENTS[str]
    structlog.get_logger("zengine.test").info("repeated.event")
    assert ("event", "repeated.event") in logline._FRAGMENTS[str]


def test_a_block_inside_a_block_of_the_same_thread_writes_with_the_outer_one(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    writes = spy_writes(monkeypatch)
    log = structlog.get_logger("zengine.test")
    with zlog.held_lines():
        log.info("outer")
        with zlog.held_lines():
            log.info("inner")
        assert writes == []  # not at the inner block's end
        context = contextvars.copy_context()
        # Another thread in a copy of the context (the long path's) holds its own block.
        thread = threading.Thread(target=context.run, args=(
            lambda: _in_block(lambda: log.info("thread one"), lambda: log.info("thread two")),))
        thread.start()
        thread.join(10)
        assert len(writes) == 1 and _events(stream) == ["thread one", "thread two"]
        log.info("last")
    assert len(writes) == 2 and writes[1].count("\n") == 3
    assert _events(stream) == ["thread one", "thread two", "outer", "inner", "last"]


def _in_block(*steps: Callable[[], None]) -> None:
    with zlog.held_lines():
        for step in steps:
            step()


def test_granian_access_line_goes_out_with_the_requests_lines_in_one_write(
        stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request answered on the event loop (the fast path): its lines, held by
    ``pipeline.handle``'s block, and the access line after the answer: one write."""

    from zengine.server import granian_engine

    monkeypatch.setattr(logging.getLogger(), "handlers", [zlog._Output.handler])
    writes = spy_writes(monkeypatch)
    log = structlog.get_logger("zengine.test")

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        with zlog.held_lines():  # what pipeline.handle does
            log.info("audit.login.accepted")
            log.info("provision.request")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"<ok/>"})

    async def send(message: Message) -> None:
        # Nothing of the request's written before the answer went out (asyncio may log).
        assert not any("zengine.test" in w for w in writes)

    scope = {"type": "http", "client": ("127.0.0.1", 5555), "method": "GET",
             "path": "/id.php", "http_version": "1.1"}
    run_asgi(granian_engine.access_logged(app), scope, send=send)
    ours = [w for w in writes if "zengine.test" in w or "granian.access" in w]
    assert len(ours) == 1 and ours[0].count("\n") == 3
    events = [json.loads(line)["event"] for line in ours[0].splitlines()]
    assert events[:2] == ["audit.login.accepted", "provision.request"]
    assert events[2].startswith('127.0.0.1 "GET /id.php HTTP/1.1" 200 ')


def test_a_requests_id_is_rendered_once_and_never_served_to_another(
        stream: io.StringIO) -> None:
    """The id's fragment is kept for the lines of its request (the same string object in
    the context); an equal or different id of another request, or one that is escaped, is
    still that request's own, as the full chain writes it."""
    log = structlog.get_logger("zengine.test")
    ids = ["0123456789abcdef", "fedcba9876543210", "0123456789abcde" + "f", "id\x1bx"]
    for request_id in ids:
        with structlog.contextvars.bound_contextvars(request_id=request_id, path="/id.php"):
            for _ in range(2):
                log.info("line.one", n=1)
            slow = _chain_line("info", "line.one", {"n": 1})
    lines = stream.getvalue().splitlines()
    shown = [*ids[:-1], "id\\x1bx"]  # the control character escaped, as the chain does
    assert [json.loads(line)["request_id"] for line in lines] == [i for i in shown for _ in "ab"]
    _same(lines[-1], slow)
