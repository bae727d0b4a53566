"""Provisioning paths answered straight from ZengineApp (no Starlette middleware or router)
answer exactly what their Starlette routes answer: status, every header, the body bytes, the
log lines and the audit events, request by request — the fast path's request sequence plus
every method, body and path shape the router decides on."""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.test_fastpath import HOME, Recorder, _app, _fresh_loggers, _lines, _requests, _send
from zengine import hookimpl
from zengine.app import Direct, ZengineApp
from zengine.log import configure_logging
from zengine.settings import LoggingSettings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _more() -> Iterator[tuple[str, str, str, dict[str, str]]]:
    a = "username=alice&password=wonderland&version=1.14"
    yield from _requests()
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"):
        yield method, f"/id.php?{a}", HOME, {}
        yield method, f"/provision?{a}", HOME, {}
    yield "POST", "/id.php", HOME, {**FORM, "X-Body": a}
    yield "POST", "/desktop", HOME, {"Content-Type": "text/plain", "X-Body": a}
    yield "POST", "/id.php", HOME, {**FORM, "X-Body": a + "&pad=" + "x" * 20000}
    yield "POST", f"/id.php?{a}", HOME, {}
    yield "GET", f"//id.php?{a}", HOME, {}
    yield "GET", f"/ID.PHP?{a}", HOME, {}
    yield "GET", "/healthz", HOME, {}
    yield "GET", f"/t/some-key/id.php?{a}", HOME, {}


def _run(app: ZengineApp) -> tuple[list[Any], list[dict[str, Any]], int]:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="info"), stream=stream)
    used = 0
    if app.direct is not None:
        inner = app.direct.app

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            nonlocal used
            used += 1
            await inner(scope, receive, send)

        app.direct = dataclasses.replace(app.direct, app=counting)
    answers = _send(app, _more())
    return answers, _lines(stream), used


@pytest.mark.parametrize("fast", [False, True])
def test_direct_endpoint_answers_as_its_starlette_route(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    _fresh_loggers(monkeypatch)
    direct_audit, routed_audit = Recorder(), Recorder()
    direct_app = _app(tmp_path, fast, ("recorder", direct_audit))
    routed_app = _app(tmp_path, fast, ("recorder", routed_audit))
    assert isinstance(direct_app.direct, Direct)
    routed_app.direct = None  # every request through Starlette's middleware and router
    direct, direct_lines, used = _run(direct_app)
    routed, routed_lines, unused = _run(routed_app)
    assert unused == 0
    assert used >= 40, used  # the provisioning requests the fast path left to it
    assert len(direct) == len(routed)
    for one, other in zip(direct, routed, strict=True):
        assert one == other
    statuses = {answer[3] for answer in direct}
    assert {200, 400, 403, 404, 405, 429} <= statuses, statuses
    assert direct_lines == routed_lines
    assert [dataclasses.astuple(e) for e in direct_audit.events] == \
        [dataclasses.astuple(e) for e in routed_audit.events]


def test_offload_runs_in_a_copied_context_and_abandons_a_stuck_thread() -> None:
    import asyncio
    import contextvars
    import threading

    from zengine.offload import Offload

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    release = threading.Event()
    offload = Offload(1)

    def binds() -> Any:
        seen = var.get()
        var.set("bound in the thread")
        return seen

    def stuck() -> Any:
        release.wait(30)
        return "late"

    def broken() -> Any:
        raise ValueError("from the thread")

    async def scenario() -> None:
        var.set("caller")
        assert await offload.run(binds, 5) == "caller"
        assert var.get() == "caller"
        var.set("second caller")
        assert await offload.run(binds, 5) == "second caller"  # nothing left from the first
        # The only slot: taken by a thread that never returns in time, then given back.
        assert await offload.run(stuck, 0.2) is None
        assert await offload.run(binds, 5) == "second caller"  # a new thread, same slot
        with pytest.raises(ValueError, match="from the thread"):
            await offload.run(broken, 5)

    try:
        asyncio.run(scenario())
        asyncio.run(scenario())  # another event loop, the same pool
    finally:
        release.set()


class Stuck:
    """Accounts from a backend that hangs until released."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    @hookimpl
    def zengine_load_accounts(self) -> None:
        self.release.wait(30)


def test_a_request_past_the_backend_deadline_is_a_503_and_frees_its_slot(
        tmp_path: Path) -> None:
    from tests.conftest import BUILTINS
    from tests.test_fastpath import _settings
    from zengine.app import create_app
    from zengine.errors import BackendUnavailable
    from zengine.testing import plugin_list
    from zengine.xmlio import error_document

    stuck = Stuck()
    settings = _settings(tmp_path, False, {"ZENGINE_SERVER__BACKEND_TIMEOUT": "0.3"})
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS, "guard"), ("stuck", stuck)])
    url = "/id.php?username=alice&password=wonderland&version=1.14"
    try:
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            for _ in range(3):  # each one answered at its deadline
                reply = client.get(url, headers={"X-Forwarded-For": HOME})
                assert reply.status_code == 503
                assert reply.content == error_document(BackendUnavailable.public_message)
            stuck.release.set()
            reply = client.get(url, headers={"X-Forwarded-For": HOME})
            assert reply.status_code == 200 and b"<account>" in reply.content
    finally:
        stuck.release.set()


def test_offload_drops_answered_jobs_and_refuses_past_its_queue() -> None:
    """Every thread stuck in a backend call: a request answered at its deadline leaves no job
    to run once the backend recovers, and past ``limit`` waiting jobs a request is refused at
    once instead of queueing (review of 4fa863a: 50 such jobs all ran after the gate opened)."""
    import asyncio
    import contextlib
    import threading

    from zengine.errors import Overloaded
    from zengine.offload import Offload

    release = threading.Event()
    started = threading.Semaphore(0)
    ran: list[int] = []
    offload = Offload(1)  # one slot, four threads

    def stuck() -> Any:
        started.release()
        release.wait(30)
        return "late"

    def login(n: int) -> Any:
        ran.append(n)
        return n

    async def scenario() -> None:
        for _ in range(4):  # each thread taken by a call that hangs, its request given up
            task = asyncio.ensure_future(offload.run(stuck, 30))
            assert await asyncio.to_thread(started.acquire, True, 30)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        outcomes: list[object] = []
        for n in range(50):
            try:
                outcomes.append(await offload.run(functools.partial(login, n), 0))
            except Overloaded:
                outcomes.append("refused")
        # One waits (the slot's worth) and is answered at its deadline; the rest at once.
        assert outcomes == [None] + ["refused"] * 49
        release.set()
        fresh: object = "refused"
        for _ in range(3000):  # until a recovered thread is back (bounded)
            try:
                fresh = await offload.run(lambda: "fresh", 30)
                break
            except Overloaded:
                await asyncio.sleep(0.01)
        assert fresh == "fresh"
        assert ran == []  # the answered request's login never ran

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_a_request_refused_by_a_full_thread_queue_is_an_overloaded_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import BUILTINS
    from tests.test_fastpath import _settings
    from zengine import app as app_module
    from zengine.errors import Overloaded
    from zengine.testing import plugin_list
    from zengine.xmlio import error_document

    class Full:
        async def run(self, work: Any, deadline: float) -> Any:
            raise Overloaded("test: every thread taken")

    monkeypatch.setattr(app_module, "OFFLOAD", Full())
    settings = _settings(tmp_path, False, {})
    app = app_module.create_app(settings, load_entrypoints=False,
                                plugins=plugin_list(*BUILTINS, "guard"))
    url = "/id.php?username=alice&password=wonderland&version=1.14"
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        reply = client.get(url, headers={"X-Forwarded-For": HOME})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == str(Overloaded.retry_after)
    assert reply.content == error_document(Overloaded.public_message)
    assert "wonderland" not in reply.text
