"""An idle worker drops its expired memo entries' kept parses (their plaintext passwords) on
its own, within zengine.deadlines.SLACK of their expiry (docs/security.md).

The app runs on an event loop whose clock moves only when a test moves it (the fast path's
clock is that loop's too), so a timer "fires after 30 s" in no time, and only then."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

from tests.test_fastpath import HOME, ROAMING, Recorder, _app, _tenant_app
from zengine.app import ZengineApp
from zengine.deadlines import SLACK, Deadlines
from zengine.runtime import Runtime


class StillLoop(asyncio.SelectorEventLoop):
    """Its time stands still until :meth:`advance` (real waits, on I/O, are unaffected)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.errors: list[dict[str, Any]] = []
        self.set_exception_handler(lambda _loop, context: self.errors.append(context))

    def time(self) -> float:
        return self.now

    async def advance(self, to: float) -> None:
        """Move the clock to ``to`` and let every timer due by then run."""
        self.now = to
        for _ in range(3):  # the callbacks moved to the ready queue run after this task
            await asyncio.sleep(0)


def _run(scenario: Callable[[StillLoop], Coroutine[Any, Any, None]]) -> StillLoop:
    loop = StillLoop()
    try:
        # No asyncio.wait_for: its timeout is on this loop's clock (pytest-timeout bounds it).
        loop.run_until_complete(scenario(loop))
    finally:
        loop.close()
    assert loop.errors == []
    return loop


@contextlib.asynccontextmanager
async def _serving(app: ZengineApp, loop: StillLoop) -> AsyncIterator[Runtime]:
    """The app's lifespan on this loop; every fast path and document cache reads the loop's
    clock."""
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await messages.put({"type": "lifespan.startup"})
    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                         messages.get, send))
    await started.wait()
    runtime: Runtime = app.state.runtime
    for rt in (runtime, *runtime.tenants.values()):
        rt.fast._clock = rt.documents._clock = loop.time
    try:
        yield runtime
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await lifespan


async def _get(app: ZengineApp, query: str, address: str = HOME, host: str = "prov.example",
               times: int = 3) -> None:
    """A miss (the long path remembers), then hits: the parse is kept, then its hit."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/id.php", "raw_path": b"/id.php",
             "root_path": "", "query_string": query.encode(),
             "headers": [(b"host", host.encode()), (b"x-forwarded-for", address.encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(times):
        await app(dict(scope), receive, send)
    assert statuses == [200] * times


def _passwords(runtime: Runtime) -> list[str]:
    return sorted(p.request.credentials.password.get_secret_value()
                  for p in runtime.fast._parses.values() if p.request.credentials is not None)


def test_an_idle_worker_drops_an_expired_entry_and_keeps_a_live_one(tmp_path: Path) -> None:
    """alice's and then bob's parses are kept; nothing more arrives. Within SLACK of alice's
    expiry her entry and parse are gone, bob's (not expired) stay; then bob's go, and no
    timer is left armed with nothing to do."""
    app = _app(tmp_path, True, ("recorder", Recorder()))

    async def scenario(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            fast = runtime.fast
            await _get(app, "username=alice&password=wonderland&version=1.14")
            await loop.advance(loop.now + 10)
            await _get(app, "u=bob&p=builder&v=1.14", address=ROAMING)
            assert _passwords(runtime) == ["builder", "wonderland"]
            alice, bob = fast._items["alice"].expires, fast._items["bob"].expires
            assert bob - alice == 10
            await loop.advance(alice + SLACK / 2)  # expired, not yet swept: SLACK is a bound
            assert len(fast) == 2
            await loop.advance(alice + SLACK)
            assert list(fast._items) == ["bob"] and _passwords(runtime) == ["builder"]
            assert fast.deadlines._timer is not None  # for bob
            await loop.advance(bob + SLACK)
            assert len(fast) == 0 and fast._parses == {}
            assert fast.deadlines._timer is None and len(fast.deadlines) == 0

    _run(scenario)


def test_a_tenants_expired_entry_goes_from_its_memo_and_the_roots_parses(
        tmp_path: Path) -> None:
    """A tenant's parses are kept by the root's fast path (the one that parses); its entry is
    in the tenant's memo: the root's timer empties both."""
    from tests import tenants_kit

    app = _tenant_app(tmp_path, True, Recorder())

    async def scenario(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            acme = runtime.tenants["acme"].fast
            await _get(app, "u=alice&p=acme-pass-1&v=1.14", host=tenants_kit.HOSTS["acme"])
            assert _passwords(runtime) == ["acme-pass-1"] and len(acme) == 1
            await loop.advance(acme._items["alice"].expires + SLACK)
            assert runtime.fast._parses == {} and len(acme) == 0

    _run(scenario)


def test_stop_cancels_the_timer(tmp_path: Path) -> None:
    """Runtime.stop (in a worker thread) cancels the armed timer on its loop: past its time
    nothing runs and nothing fails; the stopped fast path arms no other."""
    app = _app(tmp_path, True, ("recorder", Recorder()))

    async def scenario(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            await _get(app, "username=alice&password=wonderland&version=1.14")
            deadlines = runtime.fast.deadlines
            timer = deadlines._timer
            assert timer is not None and not timer.cancelled()
        assert timer.cancelled() and deadlines._timer is None and len(deadlines) == 0
        await loop.advance(loop.now + 100_000)
        deadlines.add(loop.now + 1, lambda: None)  # a late caller: ignored, nothing armed
        assert deadlines._timer is None and len(deadlines) == 0

    _run(scenario)


def test_one_timer_serves_actions_due_together_and_an_earlier_one_rearms_it() -> None:
    """Actions due within SLACK of the earliest run at one firing; one added later but due
    sooner (another backend's shorter TTL) moves the timer earlier; close() on the loop
    cancels it at once."""
    ran: list[str] = []

    async def scenario(loop: StillLoop) -> None:
        deadlines = Deadlines(loop.time)
        t = loop.now
        deadlines.add(t + 30, lambda: ran.append("a"))
        deadlines.add(t + 30.5, lambda: ran.append("b"))
        deadlines.add(t + 60, lambda: ran.append("c"))
        deadlines.add(t + 10, lambda: ran.append("early"))
        assert deadlines._timer is not None and deadlines._timer.when() == t + 10 + SLACK
        await loop.advance(t + 10 + SLACK)
        assert ran == ["early"]
        await loop.advance(t + 30 + SLACK)
        assert ran == ["early", "a", "b"] and len(deadlines) == 1
        timer = deadlines._timer
        assert timer is not None and timer.when() == t + 60 + SLACK
        deadlines.close()
        assert timer.cancelled()
        await loop.advance(t + 1000)
        assert ran == ["early", "a", "b"]

    _run(scenario)


async def _post(app: ZengineApp, body: str) -> None:
    """A POST login: the long path, which remembers a new memo entry (the old one goes)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/id.php", "raw_path": b"/id.php",
             "root_path": "", "query_string": b"",
             "headers": [(b"host", b"prov.example"), (b"x-forwarded-for", HOME.encode()),
                         (b"content-type", b"application/x-www-form-urlencoded")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(scope), receive, send)
    assert statuses == [200]


def test_entries_that_go_early_leave_no_deadline_behind(tmp_path: Path) -> None:
    """One valid login, alternately POSTed (a new memo entry replaces the last) and GET (its
    parse kept): every entry replaced takes its deadline along, so the heap stays bounded by
    the entries with parses, not by the logins within a TTL (50 here: 50 stale deadlines, each
    holding its old entry, before)."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    query = "username=alice&password=wonderland&version=1.14"

    async def scenario(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            deadlines = runtime.fast.deadlines
            for _ in range(50):
                await _post(app, query)
                await _get(app, query, times=2)
                assert len(deadlines) == len(runtime.fast) == 1
                assert len(deadlines._due) <= 3
            runtime.fast.forget("alice")
            assert len(deadlines) == 0 and runtime.fast._parses == {}

    _run(scenario)


def test_discarded_and_replaced_actions_do_not_pile_up() -> None:
    """However many actions are discarded or replaced before they are due, the heap holds at
    most twice the pending ones (plus one); only the pending run."""
    ran: list[int] = []

    async def scenario(loop: StillLoop) -> None:
        deadlines = Deadlines(loop.time)
        t = loop.now
        for i in range(1000):
            deadlines.add(t + 30 + i / 1000, functools.partial(ran.append, i), key=i % 10)
            if i % 10 == 9 and i < 900:
                for key in range(10):
                    deadlines.discard(key)
            assert len(deadlines._due) <= 2 * len(deadlines) + 1
        assert len(deadlines) == 10
        await loop.advance(t + 31 + SLACK)
        assert sorted(ran) == list(range(990, 1000)) and len(deadlines._due) == 0

    _run(scenario)


def test_a_failing_action_does_not_cost_the_others_theirs() -> None:
    """An action that raises is reported to the loop; the others due with it still run."""
    ran: list[str] = []

    def fails() -> None:
        raise ValueError("boom")

    async def scenario(loop: StillLoop) -> None:
        deadlines = Deadlines(loop.time)
        deadlines.add(loop.now + 1, fails)
        deadlines.add(loop.now + 1, lambda: ran.append("after"))
        deadlines.add(loop.now + 5, lambda: ran.append("later"))
        await loop.advance(loop.now + 1 + SLACK)
        assert ran == ["after"]
        errors, loop.errors[:] = list(loop.errors), []
        assert [type(e["exception"]) for e in errors] == [ValueError]
        await loop.advance(loop.now + 5)
        assert ran == ["after", "later"]

    _run(scenario)


def test_a_stopped_app_started_again_still_drops_expired_entries(tmp_path: Path) -> None:
    """A lifespan, stopped, then another (another loop, as a second TestClient's): stop
    closed the timer for good before, so the restarted worker kept the parse (the password)
    past its expiry."""
    app = _app(tmp_path, True, ("recorder", Recorder()))

    async def once(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            await _get(app, "username=alice&password=wonderland&version=1.14")
            assert _passwords(runtime) == ["wonderland"]
            await loop.advance(runtime.fast._items["alice"].expires + SLACK)
            assert runtime.fast._parses == {} and len(runtime.fast) == 0

    _run(once)
    _run(once)
