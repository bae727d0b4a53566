"""zengine.offload: the long path's worker threads (limit, deadline, replacement, refusal)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time

import pytest

from zengine.errors import Overloaded
from zengine.offload import Offload

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_at_most_limit_jobs_run_at_once_and_every_result_reaches_its_caller() -> None:
    offload = Offload(3)
    lock = threading.Lock()
    running = peak = 0

    def job(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return n

    async def scenario() -> list[int | None]:
        return await asyncio.gather(*(offload.run(functools.partial(job, n), 10)
                                      for n in range(60)))

    assert asyncio.run(scenario()) == list(range(60))
    assert peak == 3


def test_context_vars_are_visible_in_the_job_and_its_changes_stay_there() -> None:
    offload = Offload(2)

    def binds() -> str:
        seen = VAR.get()
        VAR.set("bound in the thread")
        return seen

    async def scenario() -> None:
        VAR.set("caller")
        assert await offload.run(binds, 5) == "caller"
        assert VAR.get() == "caller"

    asyncio.run(scenario())


def test_an_exception_in_the_job_reaches_the_caller() -> None:
    offload = Offload(1)

    def broken() -> str:
        raise ValueError("from the thread")

    async def scenario() -> None:
        with pytest.raises(ValueError, match="from the thread"):
            await offload.run(broken, 5)
        assert await offload.run(lambda: "after", 5) == "after"  # the slot came back

    asyncio.run(scenario())


def test_past_the_deadline_the_caller_gets_none_and_a_waiting_job_never_runs() -> None:
    offload = Offload(1)
    release = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        release.wait(30)
        return "slow"

    def waiter() -> str:
        ran.append("waiter")
        return "ran"  # not None: ``is None`` below means the deadline answered, not the job

    async def scenario() -> None:
        holder = asyncio.ensure_future(offload.run(slow, 5))
        await asyncio.sleep(0.05)  # it has the only slot
        started = time.monotonic()
        assert await offload.run(waiter, 0.1) is None
        assert time.monotonic() - started < 2
        release.set()
        assert await holder == "slow"
        assert await offload.run(lambda: "next", 5) == "next"

    try:
        asyncio.run(scenario())
    finally:
        release.set()
    assert ran == []


def test_a_stuck_thread_is_abandoned_its_slot_given_back_and_replaced() -> None:
    offload = Offload(1)
    release = threading.Event()
    threads: set[int] = set()

    def stuck() -> str:
        threads.add(threading.get_ident())
        release.wait(30)
        return "late"

    def where() -> int:
        return threading.get_ident()

    async def scenario() -> None:
        assert await offload.run(stuck, 0.1) is None
        other = await offload.run(where, 5)  # the one slot again, in a new thread
        assert other is not None and other not in threads

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_a_cancelled_caller_gives_its_slot_back() -> None:
    offload = Offload(1)
    release = threading.Event()

    async def scenario() -> None:
        task = asyncio.ensure_future(offload.run(lambda: release.wait(30), 30))
        await asyncio.sleep(0.05)
        waiter = asyncio.ensure_future(offload.run(lambda: "never", 30))
        await asyncio.sleep(0.01)
        waiter.cancel()
        task.cancel()
        for one in (task, waiter):
            with contextlib.suppress(asyncio.CancelledError):
                await one
        release.set()
        assert await offload.run(lambda: "free", 5) == "free"

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_every_thread_stuck_refuses_past_the_queue_bound() -> None:
    offload = Offload(1)  # one slot, four threads at most
    release = threading.Event()
    entered = threading.Semaphore(0)

    def stuck() -> None:
        entered.release()
        release.wait(30)

    async def scenario() -> None:
        for _ in range(4):
            # Abandoned only once it is in its thread (then cancelled: the slot comes back as
            # at a deadline). CI under load: a thread started after a 0.05 s deadline found
            # its job answered and dropped it, stayed idle, and the jobs below all ran.
            holder = asyncio.ensure_future(offload.run(stuck, 30))
            assert await asyncio.to_thread(entered.acquire, timeout=10)
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
        outcomes: list[object] = []
        for _ in range(5):
            try:
                outcomes.append(await offload.run(lambda: "ran", 0.05))
            except Overloaded:
                outcomes.append("refused")
        assert outcomes == [None] + ["refused"] * 4

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_several_event_loops_one_after_another_share_the_pool() -> None:
    offload = Offload(2)

    async def scenario(n: int) -> list[int | None]:
        def value(i: int) -> int:
            return n * 100 + i

        return await asyncio.gather(*(offload.run(functools.partial(value, i), 5)
                                      for i in range(10)))

    for n in range(3):
        assert asyncio.run(scenario(n)) == [n * 100 + i for i in range(10)]


def test_a_thread_the_os_refuses_is_a_refusal_and_the_slot_comes_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: ``Thread.start`` failing (the OS's thread limit) leaked the slot: every later
    request waited for its deadline. Now it is refused like a full pool, for a new arrival
    and for a job that waited for the slot alike."""
    offload = Offload(1)
    real_start = threading.Thread.start
    refusals = {"left": 0}

    def start(self: threading.Thread) -> None:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    release = threading.Event()

    async def scenario() -> None:
        refusals["left"] = 1
        with pytest.raises(Overloaded):
            await offload.run(lambda: "never", 5)
        assert await offload.run(lambda: "served", 5) == "served"  # the slot came back
        # One job holds the only thread; the next waits for the slot. When the first ends
        # its thread is idle and takes the waiter: to make the waiter need a new thread,
        # the first job's thread is stuck past its deadline.
        stuck = asyncio.ensure_future(offload.run(lambda: release.wait(10), 0.2))
        await asyncio.sleep(0.05)
        refusals["left"] = 1
        waiter = asyncio.ensure_future(offload.run(lambda: "late", 5))
        assert await stuck is None  # abandoned at its deadline: the slot goes to the waiter
        with pytest.raises(Overloaded):
            await waiter  # whose thread the OS refused
        assert await offload.run(lambda: "again", 5) == "again"

    try:
        asyncio.run(scenario())
    finally:
        release.set()
