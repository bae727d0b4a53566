"""A request that outlives a reload's drain (zengine.reload.DRAIN_SECONDS: a backend slower than
that) finishes on the old app after that app's runtime has stopped: it must neither fail in
Reloadable once its response is out nor leave its rendered document (SIP passwords) in the
stopped runtime's cache, which Runtime.stop emptied and nothing empties again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from tests.test_fastpath import HOME, Recorder, _app
from zengine import hookimpl, reload
from zengine.app import ZengineApp
from zengine.models import Identity
from zengine.runtime import Runtime


class Slow:
    """Holds the long path's document build until released (a slow backend)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    @hookimpl
    def zengine_postprocess_document(self, document: object, identity: Identity,
                                     runtime: Runtime) -> None:
        self.entered.set()
        self.release.wait(10)

    @hookimpl
    def zengine_data_generation(self) -> str:
        return "1"


def _straggler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], Runtime]:
    """One GET held across a reload whose drain gives up on it; its statuses and the old
    app's runtime (stopped by then)."""
    monkeypatch.setattr(reload, "DRAIN_SECONDS", 0.05)
    slow = Slow()

    def build() -> ZengineApp:
        return _app(tmp_path, False, ("recorder", Recorder()), ("slow", slow))

    first = build()
    app = reload.Reloadable(first, build)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/id.php", "raw_path": b"/id.php",
             "root_path": "", "query_string": b"username=alice&password=wonderland&v=1.14",
             "headers": [(b"host", b"prov.example"), (b"x-forwarded-for", HOME.encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def scenario() -> None:
        messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.Event()

        async def lifespan_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        await messages.put({"type": "lifespan.startup"})
        lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                             messages.get, lifespan_send))
        await started.wait()
        request = asyncio.ensure_future(app(dict(scope), receive, send))
        assert await asyncio.to_thread(slow.entered.wait, 10)
        assert await app.reload()
        assert not first.state.runtime.started  # the drain gave up: the old runtime stopped
        slow.release.set()
        await request
        await messages.put({"type": "lifespan.shutdown"})
        await lifespan

    asyncio.run(scenario())
    return statuses, first.state.runtime


def test_a_request_outliving_the_drain_ends_without_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drain forgot the old app's count of running requests; the straggler's own
    decrement then raised KeyError out of Reloadable after its 200 (an engine's traceback)."""
    statuses, _ = _straggler(tmp_path, monkeypatch)
    assert statuses == [200]


def test_a_request_outliving_the_drain_leaves_no_document_in_the_stopped_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its put came after Runtime.stop emptied the cache: alice's document stayed there (no
    timer, no reader) until the old runtime was collected."""
    _, old = _straggler(tmp_path, monkeypatch)
    assert len(old.documents) == 0
