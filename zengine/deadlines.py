"""Actions due at given times, run by one timer on the event loop (:class:`Deadlines`).

The fast path's kept parses hold a returning phone's plaintext password until their memo entry
goes (:mod:`zengine.fastpath`), and the document cache's entries its SIP passwords
(:mod:`zengine.doccache`). An expired entry found by a request goes then; one that no request
meets again would stay as long as the worker idles. This drops it on its own, at most
:data:`SLACK` seconds after it expires, with nothing added to a request that hits the memo or
the cache: an entry is added here once, when it is made, and discarded when it goes early.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
from collections.abc import Callable, Hashable

#: Seconds past its due time by which an action has run at most (the event loop permitting).
#: One timer serves every action due within that much of the earliest: a busy worker, whose
#: entries expire one after another, wakes at most once a second for them, and a password
#: outlives its entry's TTL by at most a second (against 30 s by default, docs/security.md).
SLACK = 1.0


def _running() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a worker thread, a direct call, the CLI
        return None


class Deadlines:
    """``add(when, action, key)`` from any thread; ``action()`` runs on the event loop once
    ``clock()`` has passed ``when``, within :data:`SLACK`, unless ``discard(key)`` or
    :meth:`close` came first. The loop is the one given to :meth:`start` (the app's lifespan)
    or the one the latest ``add`` on a loop ran on; without one nothing is kept (nothing
    would fire). The timer is armed only while an action is pending; ``close`` may come from
    any thread (``Runtime.stop`` runs in a worker thread)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        #: (when, a tie-breaker and this action's number, key), earliest first. An action
        #: discarded or replaced stays until it is due or the heap is compacted (:meth:`_tidy`).
        self._due: list[tuple[float, int, Hashable]] = []
        #: key -> (number, action): the pending actions, at most one per key.
        self._live: dict[Hashable, tuple[int, Callable[[], None]]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: When (``clock()`` time) the timer fires, armed or on its way (another thread's add).
        self._armed_at = math.inf
        self._closed = False

    def __len__(self) -> int:
        return len(self._live)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``: actions run there from now on, also after a :meth:`close` (a stopped
        runtime started again)."""
        with self._lock:
            self._closed = False
            self._bind(loop)

    def add(self, when: float, action: Callable[[], None], key: Hashable = None) -> None:
        """``key`` (default: none other) names the action for :meth:`discard`; an action
        added under a pending one's key replaces it."""
        running = _running()
        with self._lock:
            if self._closed:
                return
            if running is not None and running is not self._loop:
                self._bind(running)  # the loop serving now (a test's next loop)
            if self._loop is None:
                return
            seq = next(self._seq)
            key = object() if key is None else key
            self._live[key] = (seq, action)
            heapq.heappush(self._due, (when, seq, key))
            self._tidy()
            self._arm(running)

    def discard(self, key: Hashable) -> None:
        """The action added under ``key`` (if pending) will not run: its entry went early."""
        with self._lock:
            if self._live.pop(key, None) is not None:
                self._tidy()

    def clear(self) -> None:
        """No pending action runs (their entries all went)."""
        with self._lock:
            self._live.clear()
            self._due.clear()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Under the lock, on ``loop``."""
        self._cancel(loop)
        self._loop = loop
        self._arm(loop)

    def _tidy(self) -> None:
        """Under the lock: discarded and replaced actions outnumber the pending ones: drop
        them, so the heap holds at most about twice the pending actions however many come
        and go before they are due (amortised: each compaction follows as many changes)."""
        if len(self._due) > 2 * len(self._live) + 1:
            self._due = [item for item in self._due if self._pending(item)]
            heapq.heapify(self._due)

    def _pending(self, item: tuple[float, int, Hashable]) -> bool:
        live = self._live.get(item[2])
        return live is not None and live[0] == item[1]

    def _arm(self, running: asyncio.AbstractEventLoop | None) -> None:
        """Under the lock, on the ``running`` loop (or none): the timer for the earliest
        action, unless it fires by then anyway; from another thread, armed on its loop."""
        loop = self._loop
        if not self._due or loop is None:
            return
        at = self._due[0][0] + SLACK
        if self._armed_at <= at:
            return
        self._armed_at = at
        if running is loop:
            self._schedule(loop)
            return
        try:
            loop.call_soon_threadsafe(self._rearm)
        except RuntimeError:  # its loop is closed: nothing fires any more
            self._armed_at = math.inf

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Under the lock, on ``loop`` (the bound one)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(max(0.0, self._armed_at - self._clock()), self._fire)

    def _rearm(self) -> None:
        """Another thread's :meth:`add` wants the timer earlier."""
        with self._lock:
            loop = self._loop
            if not self._closed and self._armed_at < math.inf and loop is _running() \
                    and loop is not None:
                self._schedule(loop)

    def _fire(self) -> None:
        with self._lock:
            self._timer, self._armed_at = None, math.inf
            if self._closed:
                return
            now = self._clock()
            due = []
            while self._due and self._due[0][0] <= now:
                item = heapq.heappop(self._due)
                if self._pending(item):
                    due.append(self._live.pop(item[2])[1])
            loop = self._loop
        for action in due:
            try:
                action()
            except Exception as exc:  # the others still run: each drops a password
                if loop is not None:
                    loop.call_exception_handler({"message": "a deadline's action failed",
                                                 "exception": exc})
        with self._lock:
            if not self._closed:
                self._arm(loop)

    def close(self) -> None:
        """No action runs any more (until :meth:`start`); the timer is cancelled."""
        running = _running()
        with self._lock:
            self._closed = True
            self._live.clear()
            self._due.clear()
            self._cancel(running)

    def _cancel(self, running: asyncio.AbstractEventLoop | None) -> None:
        """Under the lock: the timer is cancelled on its loop (a handle is the loop's; the
        cancelled one lets go of this object at once)."""
        timer, loop, self._timer, self._armed_at = self._timer, self._loop, None, math.inf
        if timer is None or loop is None:
            return
        if running is loop:
            timer.cancel()
        elif not loop.is_closed():
            try:
                loop.call_soon_threadsafe(timer.cancel)
            except RuntimeError:  # closed in the meantime: its handles went with it
                pass
