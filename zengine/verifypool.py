"""The bounded, fair pool every slow password verification runs in.

At most ``size`` verifications run at once (threads of their own, never the event loop); at
most ``queue`` more wait. Beyond that :class:`~zengine.errors.Overloaded` is raised at once: a
flood of guesses gets fast 503s instead of a queue that grows without end.

Waiting verifications are served *fairly across lanes* (:func:`zengine.verifying.lane_for`:
tenant and real client address), not first come first served. Measured before this
(bench/guard_logins.py, 2 workers): the attacker's first dozen guesses, sent at once, queued
ahead of the real user's login, which then waited ~0.5 s for them before its own
verification. Now the pool does start-time fair queuing (Goyal et al., 1996), one unit of
work per verification:

- **Which waiting verification runs next**: each verification gets a start tag when it
  arrives, ``max(round open to newcomers, its lane's previous tag + 1)``; the smallest tag
  runs next (ties: the one that came first). Tag ``V`` is round ``V``; the round open to
  newcomers is the one being served (the tag started last), joined at its end, until the
  first verification that joined it that way starts: later newcomers join the next round.
  So a round cannot be stretched without end by addresses that each send one verification
  (an IPv6 /48 has 65,536 /64 lanes) and a backlogged lane is served at least once a round.
  A login from an address with nothing queued runs after at most two verifications of every
  other busy address (the rest of this round, the next), not after their whole backlog; a
  lone lane gets the whole pool (nothing idles while anything waits); many phones behind one
  address (carrier-grade NAT) share a lane and are all served, in order.
- **Who is refused when the queue is full**: the verification that would run last, that is
  the largest tag among the waiting ones and the newcomer (ties: the one that came last, the
  newcomer if its tag is among them). A waiting one
  pushed out gets the 503 it would have got had it come last. So one address's burst cannot
  fill the queue and make another address's login answer 503.
- A lane exists only while it has something waiting or running: memory is bounded by
  ``size + queue``, however many addresses come by.

The pool's threads also run at a lower scheduling priority (``nice``, Linux only: the nice
value is per thread there, and argon2's own lane threads inherit it). A burst of cold logins
keeps every core busy with argon2 for as long as the queue lasts; at normal priority the
event loop and the threads answering warm logins (verified-login cache hits, a few ms each)
got an equal share with the many argon2 threads, and their p99 went from 5 to 150 ms
(bench/guard_logins.py). Niced, verification still gets every core nothing else wants.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zengine.errors import Overloaded
from zengine.verifying import Lane, current_lane

T = TypeVar("T")


def cores() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return int(count or 1)


@dataclass(eq=False)
class _Job(Generic[T]):
    fn: Callable[[], T]
    future: Future[T]
    lane: Lane
    #: Start tag (see the module docstring) and arrival order, for ties.
    start: int = 0
    seq: int = 0
    #: Tagged with the round open to newcomers while it was being served: starting, it
    #: closes that round to newcomers.
    joined: bool = False


class VerifyPool:
    """See the module docstring. ``size=0`` means one per CPU core; ``nice`` is added to the
    pool threads' nice value (Linux; elsewhere ignored)."""

    def __init__(self, size: int, queue: int, nice: int = 0) -> None:
        self.size = size or cores()
        self.queue = queue
        self.nice = nice
        self._lock = threading.Lock()
        #: Waiting jobs per lane, oldest first (a lane's tags grow along its deque).
        self._waiting: dict[Lane, deque[_Job[Any]]] = {}
        self._waiting_count = 0
        #: Running jobs per lane (no entry: none).
        self._running: dict[Lane, int] = {}
        self._running_count = 0
        #: The next start tag of each lane with something waiting or running.
        self._next_tag: dict[Lane, int] = {}
        #: The round a lane with nothing waiting joins (at least the tag started last).
        self._open = 0
        self._seq = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def in_flight(self) -> int:
        """Verifications running or waiting right now."""
        return self._running_count + self._waiting_count

    @property
    def waiting(self) -> int:
        """Verifications waiting for a slot."""
        return self._waiting_count

    def lanes(self) -> set[Lane]:
        """The lanes the pool remembers (something waiting or running): for tests."""
        with self._lock:
            return set(self._waiting) | set(self._running) | set(self._next_tag)

    def _full(self) -> Overloaded:
        return Overloaded(f"password verification pool full ({self.size} running, "
                          f"{self.queue} waiting)")

    def submit(self, fn: Callable[[], T], lane: Lane | None = None) -> Future[T]:
        """Queue ``fn`` in ``lane`` (default: the login in progress's); raises
        :class:`Overloaded` at once when the pool and its queue are full."""
        job: _Job[T] = _Job(fn, Future(), current_lane() if lane is None else lane)
        pushed_out: _Job[Any] | None = None
        executor: ThreadPoolExecutor | None = None
        with self._lock:
            own = self._next_tag.get(job.lane, 0)
            job.start = max(self._open, own)
            job.seq = self._seq = self._seq + 1
            if self._running_count < self.size:
                self._next_tag[job.lane] = job.start + 1
                self._start(job)
                executor = self._executor_locked()
            else:
                if self._waiting_count >= self.queue:
                    pushed_out = self._push_out(job)
                job.joined = own <= self._open
                self._next_tag[job.lane] = job.start + 1
                self._waiting.setdefault(job.lane, deque()).append(job)
                self._waiting_count += 1
        if pushed_out is not None:
            try:
                pushed_out.future.set_exception(self._full())
            except InvalidStateError:
                pass  # its caller cancelled it meanwhile: nobody waits for the answer
        if executor is not None:
            try:
                executor.submit(self._work, job)
            except BaseException:
                with self._lock:
                    self._finish(job)
                raise
        return job.future

    def _executor_locked(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="verify",
                                                initializer=self._lower_priority)
        return self._executor

    def _lower_priority(self) -> None:
        # Only Linux has a nice value per thread; elsewhere setpriority(PRIO_PROCESS, ...)
        # would lower the whole process, the event loop with it.
        if not self.nice or sys.platform != "linux":
            return
        thread = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, thread,
                           min(19, os.getpriority(os.PRIO_PROCESS, thread) + self.nice))
        except OSError:
            pass  # a sandbox may forbid it: verification then runs at normal priority

    def _push_out(self, job: _Job[Any]) -> _Job[Any]:
        """Make room for ``job`` in the full queue by taking out the waiting job that would
        run last, if it would run after ``job``; else raise :class:`Overloaded`."""
        last: deque[_Job[Any]] | None = None
        for jobs in self._waiting.values():
            if last is None or (jobs[-1].start, jobs[-1].seq) > (last[-1].start, last[-1].seq):
                last = jobs
        if last is None or last[-1].start <= job.start:
            raise self._full()
        victim = last.pop()
        # The lane's next tag goes back to the victim's: as if it had never come.
        self._next_tag[victim.lane] = victim.start
        self._waiting_count -= 1
        if not last:
            del self._waiting[victim.lane]
            self._forget(victim.lane)
        return victim

    def _start(self, job: _Job[Any]) -> None:
        # The round being served stays open to newcomers until one that joined it starts.
        self._open = max(self._open, job.start + 1 if job.joined else job.start)
        self._running[job.lane] = self._running.get(job.lane, 0) + 1
        self._running_count += 1

    def _finish(self, job: _Job[Any]) -> None:
        left = self._running[job.lane] - 1
        if left:
            self._running[job.lane] = left
        else:
            del self._running[job.lane]
            self._forget(job.lane)
        self._running_count -= 1

    def _forget(self, lane: Lane) -> None:
        """Drop a lane's tag once nothing of it runs or waits (bounded memory). Coming back,
        it starts at the open round, which is at least its last start."""
        if lane not in self._running and lane not in self._waiting:
            self._next_tag.pop(lane, None)

    def _next_locked(self) -> _Job[Any] | None:
        """The waiting job with the smallest start tag (an O(lanes) scan, lanes <= queue)."""
        best: deque[_Job[Any]] | None = None
        for jobs in self._waiting.values():
            if best is None or (jobs[0].start, jobs[0].seq) < (best[0].start, best[0].seq):
                best = jobs
        if best is None:
            return None
        job = best.popleft()
        if not best:
            del self._waiting[job.lane]
        self._waiting_count -= 1
        return job

    def _work(self, job: _Job[Any] | None) -> None:
        # One executor thread runs jobs until none waits: each turn consumes a queued job,
        # and the queue is bounded, so the loop is too.
        while job is not None:
            ran, result, error = False, None, None
            if job.future.set_running_or_notify_cancel():
                ran = True
                try:
                    result = job.fn()
                except BaseException as exc:
                    error = exc
            following = None
            try:
                with self._lock:
                    # The next one starts before this one's lane is forgotten, so that a lane
                    # whose next job is this very thread's keeps its tag.
                    following = self._next_locked()
                    if following is not None:
                        self._start(following)
                    self._finish(job)
            finally:
                # Answered once its slot is free: a caller with its answer finds the pool
                # with room (answered first, a login right after its last one on a full pool
                # was refused as if that one still ran). In ``finally``: were the accounting
                # ever to fail, its caller still gets its answer instead of waiting for ever.
                if error is not None:
                    job.future.set_exception(error)
                    error = None  # no cycle through this frame
                elif ran:
                    job.future.set_result(result)
            job = following

    def run(self, fn: Callable[[], T], lane: Lane | None = None) -> T:
        """Run ``fn`` in the pool and wait for it (from a worker thread)."""
        return self.submit(fn, lane).result()

    async def run_async(self, fn: Callable[[], T], lane: Lane | None = None) -> T:
        """Run ``fn`` in the pool and await it (from the event loop, which never blocks)."""
        return await asyncio.wrap_future(self.submit(fn, lane))

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
