"""zengine.logline.log_event writes the line ``getattr(log, level)(event, **fields)`` writes,
byte for byte (the time aside), or none when that writes none: with context values bound,
secrets, non-ASCII and control characters in fields, a level that drops the line, the console
format, a bound logger's own values, a test's capture; and inside held_lines its lines are
held with the request's others. Then the three lines of a returning login (the audit plugin's
two, provision.request) against the same lines logged the structlog way."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from starlette.testclient import TestClient

from tests.conftest import BUILTINS, EXAMPLE_CONFIG, spy_writes
from zengine import log as zlog
from zengine.app import create_app
from zengine.log import configure_logging
from zengine.logline import log_event
from zengine.settings import LoggingSettings, load_settings
from zengine.testing import plugin_list

_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")

FIELDS: list[dict[str, Any]] = [
    {"outcome": "served", "status": 200, "error": None, "username": "alice",
     "account_count": 2, "duration_ms": 0.31},
    {"password": "hunter2", "token": "t0k", "detail": "bad password=hunter2&x=1",
     "key": SecretStr("s3cret"), "note": "Authorization: Basic c2VjcmV0"},
    {"username": "jos\u00e9", "display": "\u65e5\u672c", "ctl": "a\x1b[2Jb\r\nforged",
     "bidi": "a\u202eb", "long": "z" * 600, "k\x1bey": "v", "nested": {"p": "x", 1: [2]}},
    {"path": "/overridden", "tenant": "other", "level": "mine", "timestamp": "mine"},
    {},
]


def _configure(format: str = "json", level: str = "debug") -> io.StringIO:
    out = io.StringIO()
    configure_logging(LoggingSettings(format=format, level=level), stream=out)
    return out


def _both(out: io.StringIO, call: Callable[[Callable[..., None]], None]) -> tuple[str, str]:
    """What ``call`` writes through structlog, then through log_event (time masked)."""
    call(lambda log, level, event, fields: getattr(log, level)(event, **fields))
    theirs = out.getvalue()
    out.seek(0)
    out.truncate()
    call(log_event)
    ours = out.getvalue()
    out.seek(0)
    out.truncate()
    return _STAMP.sub("T", theirs), _STAMP.sub("T", ours)


@pytest.fixture
def bound() -> Iterator[None]:
    with structlog.contextvars.bound_contextvars(
            request_id="0123456789abcdef", path="/id.php", client_addr="192.0.2.1",
            tenant="acme"):
        yield


@pytest.mark.parametrize("format", ["json", "console"])
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
@pytest.mark.parametrize("fields", FIELDS)
def test_the_same_line_as_structlog(bound: None, format: str, level: str,
                                    fields: dict[str, Any]) -> None:
    out = _configure(format)
    log = structlog.get_logger("zengine.test")
    theirs, ours = _both(out, lambda emit: emit(log, level, "some.event", dict(fields)))
    assert theirs == ours and theirs.count("\n") == 1
    assert "hunter2" not in ours and "s3cret" not in ours and "t0k" not in ours


@pytest.mark.parametrize("configured", ["warning", "error"])
def test_a_level_that_drops_the_line_drops_it_here_too(bound: None, configured: str) -> None:
    out = _configure("json", configured)
    log = structlog.get_logger("zengine.dropped")
    written = {"warning": ("warning", "error"), "error": ("error",)}[configured]
    for level in ("debug", "info", "warning", "error"):
        def call(emit: Callable[..., None], level: str = level) -> None:
            emit(log, level, "e", {"n": 1})

        theirs, ours = _both(out, call)
        assert theirs == ours
        assert bool(ours) == (level in written)


def test_a_logger_cached_under_an_earlier_configuration_behaves_as_structlog(
        bound: None) -> None:
    """structlog keeps a logger's level from its first use: so does log_event."""
    _configure("json", "debug")
    log = structlog.get_logger("zengine.cached")
    log.debug("first use")
    out = _configure("json", "warning")
    theirs, ours = _both(out, lambda emit: emit(log, "info", "later", {"n": 1}))
    assert theirs == ours and '"event": "later"' in ours


def test_a_logger_cached_before_a_second_configuration_is_captured_by_capture_logs() -> None:
    """A worker configures logging again after its parent, a test after another: a logger
    cached in between must still follow the configured processors (capture_logs edits them in
    place; a fresh list per call stranded such loggers and their lines escaped the capture)."""
    _configure("json", "info")
    log = structlog.get_logger("zengine.cached_twice")
    log.info("first use")  # cached now, with the processors of this configuration
    _configure("json", "info")
    with structlog.testing.capture_logs() as captured:
        log.warning("after", n=1)
        log_event(log, "info", "direct", {"n": 2})
    assert [(line["event"], line["n"]) for line in captured] == [("after", 1), ("direct", 2)]


def test_a_bound_logger_and_its_values(bound: None) -> None:
    out = _configure()
    log = structlog.get_logger("zengine.test").bind(job="sync", password="pw", n=0)
    theirs, ours = _both(out, lambda emit: emit(log, "info", "bound.event", {"n": 1}))
    assert theirs == ours and '"job": "sync"' in ours and '"pw"' not in ours


def test_other_setups_go_through_structlog(bound: None) -> None:
    _configure()
    log = structlog.get_logger("zengine.test")
    with structlog.testing.capture_logs() as captured:
        log_event(log, "info", "captured", {"n": 1})
        log.info("captured", n=1)
    assert captured[0] == captured[1] and captured[0]["event"] == "captured"
    calls: list[tuple[str, dict[str, Any]]] = []

    class Other:
        def info(self, event: str, **fields: Any) -> None:
            calls.append((event, fields))

    log_event(Other(), "info", "other", {"n": 1})
    assert calls == [("other", {"n": 1})]
    with pytest.raises(TypeError):
        log_event(log, "info", "e", {"event": "twice"})  # as log.info("e", event=...)


def test_tracebacks_take_the_full_chain(bound: None) -> None:
    out = _configure()
    log = structlog.get_logger("zengine.test")

    def crash(emit: Callable[..., None]) -> None:
        try:
            raise ValueError("password=hunter2")
        except ValueError:
            emit(log, "error", "crash", {"exc_info": True})

    theirs, ours = _both(out, crash)
    assert theirs == ours and "Traceback" in ours and "hunter2" not in ours


def test_held_with_the_requests_lines_a_warning_at_once(
        bound: None, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _configure()
    writes = spy_writes(monkeypatch)
    log = structlog.get_logger("zengine.test")
    with zlog.held_lines():
        log_event(log, "info", "one", {"n": 1})
        log.info("two", n=2)
        log_event(log, "warning", "urgent", {})
        assert writes and '"urgent"' in writes[0] and '"one"' not in out.getvalue()
        log_event(log, "info", "three", {"n": 3})
    assert len(writes) == 2 and [line.split('"event": "')[1].split('"')[0]
                                 for line in writes[1].splitlines()] == ["one", "two", "three"]


def test_a_returning_logins_lines_are_the_structlog_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit plugin's two lines and provision.request of a returning login, with
    log_event and with the structlog calls it replaces: the same bytes (request id, time and
    duration aside), in one held write, and structlog's call machinery not used."""
    import zengine_audit
    from zengine import pipeline

    out = _configure("json", "info")
    for module, name in ((pipeline, "zengine.pipeline"), (zengine_audit, "zengine.audit")):
        monkeypatch.setattr(module, "log", structlog.get_logger(name))
    writes = spy_writes(monkeypatch)
    app = create_app(load_settings(EXAMPLE_CONFIG, environ={}), load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS))
    processed: list[str] = []
    process = structlog._base.BoundLoggerBase._process_event

    def counted(self: Any, method: str, event: Any, kw: Any) -> Any:
        processed.append(str(event))
        return process(self, method, event, kw)

    masked = re.compile(r'("request_id": "|"duration_ms": )[^,"}]*')
    query = "/id.php?username=alice&password=wonderland&version=1.14"
    with TestClient(app, client=("192.0.2.1", 5000)) as client:
        for _ in range(3):  # the slow verification, then the cached document
            assert client.get(query).status_code == 200
        lines: list[str] = []
        for direct in (True, False):
            if not direct:
                def call(log: Any, level: str, event: str, fields: dict[str, Any]) -> None:
                    getattr(log, level)(event, **fields)

                monkeypatch.setattr(pipeline, "log_event", call)
                monkeypatch.setattr(zengine_audit, "log_event", call)
            monkeypatch.setattr(structlog._base.BoundLoggerBase, "_process_event", counted)
            out.seek(0)
            out.truncate()
            writes.clear()
            processed.clear()
            assert client.get(query).status_code == 200
            lines.append(masked.sub(r"\1X", _STAMP.sub("T", out.getvalue())))
            assert len(writes) == 1, writes  # the request's three lines in one write
            assert processed == ([] if direct else [
                "audit.login.accepted", "audit.document.served", "provision.request"])
    assert lines[0] == lines[1]
    assert [line.split('"event": "')[1].split('"')[0] for line in lines[0].splitlines()] == [
        "audit.login.accepted", "audit.document.served", "provision.request"]
    assert "wonderland" not in lines[0]


def test_the_audit_plugins_fields_are_the_events_fields_in_order() -> None:
    """Copied from the event's __dict__ when that is exactly its fields: the same dict, in
    the same order, as reading them one by one; else read one by one."""
    import dataclasses

    from zengine.models import AuditEvent
    from zengine_audit import _FIELDS, _fields

    def one_by_one(event: AuditEvent) -> list[tuple[str, Any]]:
        return [(name, getattr(event, name)) for name in _FIELDS]

    @dataclasses.dataclass(frozen=True)
    class Extended(AuditEvent):
        extra: str = "x"

    plain = AuditEvent("login.accepted", "accepted")
    full = AuditEvent("document.served", "served", "alice", "static", "192.0.2.1", "mobile",
                      "1.14", 2, "d\u00e9tail", "acme")
    later = AuditEvent("login.refused", "rejected")
    object.__setattr__(later, "added", "y")
    for event in (plain, full, Extended("portal.signin", "accepted"), later):
        assert list(_fields(event).items()) == one_by_one(event)
    assert "event" not in _fields(full) and _fields(full) is not full.__dict__


def test_each_handled_request_binds_its_own_context_and_leaves_it_as_it_was() -> None:
    """pipeline.handle sets structlog's request_id, path and client_addr itself after the
    first request (the variables bind_contextvars made): every line of a request carries
    that request's values, an outer binding is back afterwards, and a plugin's line bound
    the structlog way sees them."""
    import json

    from zengine import pipeline
    from zengine.errors import BadRequest
    from zengine.runtime import build_runtime

    out = _configure("json", "info")
    runtime = build_runtime(load_settings(EXAMPLE_CONFIG, environ={}), load_entrypoints=False,
                            plugins=plugin_list(*BUILTINS))

    def refused() -> Any:
        structlog.get_logger("zengine.test").info("plugin.line")
        raise BadRequest("no")

    with structlog.contextvars.bound_contextvars(path="/outer"):
        for path, addr in (("/id.php", "192.0.2.1"), ("/desktop", "192.0.2.2"),
                           ("/id.php", "192.0.2.3")):
            pipeline.handle(refused, runtime, path=path, client_addr=addr)
        assert structlog.contextvars.get_contextvars() == {"path": "/outer"}
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["path"], x["client_addr"]) for x in lines] == [
        ("/id.php", "192.0.2.1")] * 3 + [("/desktop", "192.0.2.2")] * 3 \
        + [("/id.php", "192.0.2.3")] * 3
    ids = [x["request_id"] for x in lines]
    assert len(set(ids)) == 3 and ids[0] == ids[2] != ids[3]
    assert structlog.contextvars.get_contextvars() == {}
