"""An idle worker drops its expired rendered documents (their SIP passwords) on its own, within
zengine.deadlines.SLACK of their expiry (docs/security.md), whoever put them: the long path's
worker threads, any tenant's runtime. On tests.test_fastpath_idle's loop, whose clock moves only
when a test moves it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.test_document_cache import make_runtime
from tests.test_fastpath import Recorder, _app, _tenant_app
from tests.test_fastpath_idle import StillLoop, _get, _run, _serving
from zengine.deadlines import SLACK
from zengine.doccache import DocumentCache, DocumentCacheSettings, Rendered


def _cache(loop: StillLoop, **settings: float) -> DocumentCache:
    cache = DocumentCache(DocumentCacheSettings(**settings), clock=loop.time)
    cache.deadlines.start(loop)
    return cache


def test_an_expired_document_goes_unread_and_a_live_one_stays() -> None:
    """Put from worker threads; nothing reads them. Within SLACK of the first's expiry it is
    gone, the second (put 10 s later) stays and goes at its own time; an entry put again
    lives from then on; no timer is left armed with nothing to do."""

    async def scenario(loop: StillLoop) -> None:
        cache = _cache(loop, ttl=30)
        t = loop.now
        await asyncio.to_thread(cache.put, ("a",), Rendered(b"<a sip-secret/>", 1))
        await loop.advance(t + 10)
        await asyncio.to_thread(cache.put, ("b",), Rendered(b"<b/>", 1))
        await asyncio.to_thread(cache.put, ("c",), Rendered(b"<c/>", 1))
        await loop.advance(t + 20)
        await asyncio.to_thread(cache.put, ("c",), Rendered(b"<c2/>", 1))  # renewed
        assert cache.deadlines._timer is not None
        await loop.advance(t + 30 + SLACK / 2)  # expired, not yet dropped: SLACK is a bound
        assert len(cache) == 3
        await loop.advance(t + 30 + SLACK)
        assert list(cache._items) == [("b",), ("c",)]
        await loop.advance(t + 40 + SLACK)
        assert list(cache._items) == [("c",)]
        assert cache.get(("c",)) == Rendered(b"<c2/>", 1)
        await loop.advance(t + 50 + SLACK)
        assert len(cache) == 0 and len(cache.deadlines) == 0
        assert cache.deadlines._timer is None

    _run(scenario)


def test_evicted_and_read_expired_entries_leave_no_deadline_behind() -> None:
    """Entries pushed out by size, or found expired by a read, take their deadlines along:
    the heap holds at most twice the entries (plus one), however many came and went."""

    async def scenario(loop: StillLoop) -> None:
        cache = _cache(loop, ttl=30, max_entries=16)
        for i in range(500):
            cache.put((str(i),), Rendered(b"<x/>", 1))
            assert len(cache.deadlines) == len(cache) <= 16
            assert len(cache.deadlines._due) <= 2 * len(cache) + 1
        cache._clock = lambda: loop.now + 30  # expired, read before the timer
        assert cache.get(("499",)) is None and len(cache.deadlines) == 15
        cache.clear()
        assert len(cache.deadlines) == 0

    _run(scenario)


def test_stop_cancels_the_timer_and_drops_the_documents(tmp_path: Path) -> None:
    """Runtime.stop (in a worker thread) empties the cache and cancels its timer on the loop;
    a straggler's put after it is neither kept nor arms anything; start and serve_on open the
    cache and its timer again."""
    runtime = make_runtime(tmp_path)

    async def scenario(loop: StillLoop) -> None:
        runtime.documents._clock = loop.time
        runtime.serve_on(loop)
        cache = runtime.documents
        await asyncio.to_thread(cache.put, ("a",), Rendered(b"<a/>", 1))
        await loop.advance(loop.now)  # the put's thread arms the timer on the loop
        timer = cache.deadlines._timer
        assert timer is not None and not timer.cancelled()
        await asyncio.to_thread(runtime.stop)
        await loop.advance(loop.now)
        assert timer.cancelled() and len(cache) == 0 and len(cache.deadlines) == 0
        await asyncio.to_thread(cache.put, ("late",), Rendered(b"<l/>", 1))
        await loop.advance(loop.now + 100)
        assert cache.deadlines._timer is None and len(cache.deadlines) == 0
        assert len(cache) == 0  # nor is it kept: nothing would empty the cache again
        runtime.start()
        runtime.serve_on(loop)
        await asyncio.to_thread(cache.put, ("again",), Rendered(b"<a/>", 1))
        assert ("again",) in cache._items
        await loop.advance(loop.now + 30 + SLACK)
        assert ("again",) not in cache._items
        runtime.stop()

    _run(scenario)


def test_a_served_document_goes_unread_with_the_fast_path_off(tmp_path: Path) -> None:
    """The long path (a worker thread) renders and caches alice's document; no request
    comes back (nor could the fast path read it: it is off). It goes on its own."""
    app = _app(tmp_path, False, ("recorder", Recorder()))

    async def scenario(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            await _get(app, "username=alice&password=wonderland&version=1.14", times=1)
            ((rendered, expires),) = runtime.documents._items.values()
            assert b"Down-the-rabbit-hole" in rendered.body  # alice's SIP password
            await loop.advance(expires + SLACK)
            assert len(runtime.documents) == 0

    _run(scenario)


def test_a_tenants_document_goes_from_its_own_cache(tmp_path: Path) -> None:
    """Each tenant's runtime has its own document cache (its own TTL): the lifespan starts
    its timer too."""
    from tests import tenants_kit

    app = _tenant_app(tmp_path, True, Recorder())

    async def scenario(loop: StillLoop) -> None:
        async with _serving(app, loop) as runtime:
            acme = runtime.tenants["acme"].documents
            await _get(app, "u=alice&p=acme-pass-1&v=1.14", host=tenants_kit.HOSTS["acme"],
                       times=1)
            assert len(acme) == 1 and len(runtime.documents) == 0
            (expires,) = [item[1] for item in acme._items.values()]
            await loop.advance(expires + SLACK)
            assert len(acme) == 0

    _run(scenario)
