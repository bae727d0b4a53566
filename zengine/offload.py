"""The worker threads of the long path: every provisioning request that is not a fully cached
returning login runs its pipeline here (:class:`Offload`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from zengine import errors
from zengine.log import release_held

#: Provisioning requests in worker threads at once, per process (anyio's default too).
PROVISION_THREADS = 40

_T = TypeVar("_T")


class Offload:
    """The worker threads of the long path: at most ``limit`` requests at a time, each with a
    deadline; a thread stuck past it is abandoned, its slot given back (``3 * limit`` replaced
    at most), past that a request waits until its deadline (its job dropped unrun) or is refused.

    Not ``anyio.to_thread``: its limiter, cancel scopes and per-call bookkeeping cost about a
    fifth of a returning login's CPU on the long path (profiled, docs/benchmarks.md). Nor
    ``asyncio.timeout`` and ``asyncio.Semaphore``: a timer handle, a slot count and a queue of
    waiting jobs do the same with less per job, a freed slot goes straight to the next job
    (its task is not woken just to hand it over), and the results ready at once wake the event
    loop once (one ``call_soon_threadsafe``, not one each). Threads are daemons, so a backend
    call stuck for good cannot hold up the worker's exit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cap = 4 * limit
        self._jobs: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        #: Guards the counts below and every :class:`_Slots`' ``ready`` and ``woken``.
        self._lock = threading.Lock()
        #: Threads waiting for a job, less the jobs queued (negative: jobs wait for one).
        self._idle = 0
        self._threads = 0
        self._slots: _Slots | None = None

    async def run(self, work: Callable[[], _T], deadline: float) -> _T | None:
        """``work()`` in a thread, in a copy of the caller's context; ``None`` past the deadline.

        Generic in what ``work`` returns (the app's jobs: a :class:`~zengine.pipeline.Reply`):
        nothing here looks at the result, it is only handed back."""
        loop = asyncio.get_running_loop()
        slots = self._slots
        if slots is None or slots.loop is not loop:
            # Slots and futures belong to one event loop (tests run several, one after another).
            slots = self._slots = _Slots(loop, self.limit)
        job: _Job[_T] = _Job(slots, loop.create_future(), contextvars.copy_context(), work)
        timer = loop.call_at(loop.time() + deadline, _expire, job.future)
        try:
            if slots.free > 0:
                slots.free -= 1
                try:
                    self._submit(job)
                except errors.Overloaded:
                    self._release(slots)
                    raise
                job.slotted = True
            else:
                slots.waiting.append(job)  # submitted by ``_release`` when a slot frees
            return await job.future
        finally:
            timer.cancel()
            job.work = None  # answered: a thread drops it unrun, and with it its password
            if job.slotted:
                self._release(slots)
            release_held(job.context)  # still running: its lines so far now, later ones at once

    def _release(self, slots: _Slots) -> None:
        """A slot given back: to the first job still waiting, else to the count."""
        while slots.waiting:
            job = slots.waiting.popleft()
            if job.work is None or job.future.done():
                continue  # answered (its deadline) or cancelled while it waited
            try:
                self._submit(job)
            except errors.Overloaded as exc:
                job.future.set_exception(exc)
                continue
            job.slotted = True
            return
        slots.free += 1

    def _submit(self, job: _Job[Any]) -> None:
        with self._lock:
            spawn = self._idle <= 0 and self._threads < self._cap
            if not spawn and self._idle <= -self.limit:
                raise errors.Overloaded(f"{-self._idle} requests wait for a provisioning thread")
            self._idle -= 1
            if spawn:
                self._idle += 1
                self._threads += 1
        if spawn:
            # Started before the job is queued: when the OS refuses a thread (its limit,
            # memory), the job is refused like a full pool's, nothing queued, and the caller
            # gives its slot back (review: a RuntimeError here leaked the slot for good).
            try:
                threading.Thread(target=self._serve, name="zengine-request",
                                 daemon=True).start()
            except RuntimeError as exc:
                with self._lock:
                    self._threads -= 1  # the job's -1 and the thread's +1 to idle cancel out
                raise errors.Overloaded(f"no provisioning thread could start: {exc}") from None
        self._jobs.put(job)

    def _serve(self) -> None:
        lock = self._lock
        while True:  # for the life of the process, one job at a time
            job = self._jobs.get()
            if (work := job.work) is None:  # one read: ``run`` may clear it meanwhile
                with lock:
                    self._idle += 1
                continue
            try:
                result: object = job.context.run(work)
            except BaseException as exc:
                result = exc
            slots = job.slots
            with lock:
                self._idle += 1
                slots.ready.append((job.future, result))
                wake = not slots.woken
                slots.woken = True
            if wake:
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    slots.loop.call_soon_threadsafe(self._deliver, slots)

    def _deliver(self, slots: _Slots) -> None:
        """On the event loop: every result ready since the last wake-up, to its caller."""
        with self._lock:
            ready, slots.ready = slots.ready, []
            slots.woken = False
        for future, result in ready:
            _settle(future, result)


@dataclass(slots=True, eq=False)
class _Slots:
    """One event loop's share of an :class:`Offload`: its slots and its results to deliver."""

    loop: asyncio.AbstractEventLoop
    free: int
    #: Jobs waiting for a slot, in arrival order (answered or cancelled ones are skipped).
    waiting: deque[_Job[Any]] = field(default_factory=deque)
    #: Results the threads finished and the loop has not delivered yet.
    ready: list[tuple[asyncio.Future[Any], object]] = field(default_factory=list)
    #: A delivery is scheduled on the loop: later results ride along with it.
    woken: bool = False


@dataclass(slots=True, eq=False)
class _Job(Generic[_T]):
    slots: _Slots
    future: asyncio.Future[_T | None]
    context: contextvars.Context
    work: Callable[[], _T] | None
    #: It holds one of the slots: given back when its caller is answered.
    slotted: bool = False


#: One pool per process, for every app built in it: a reloaded app (SIGHUP) reuses the
#: threads instead of leaving the old app's idle ones behind.
OFFLOAD = Offload(PROVISION_THREADS)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)  # its deadline: the caller is answered without the job


def _settle(future: asyncio.Future[Any], result: object) -> None:
    if future.done():
        return  # abandoned at its deadline, or its caller cancelled
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
