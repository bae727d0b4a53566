"""Actions due at given times, run by one timer on the event loop (:class:`Deadlines`).

The fast path's kept parses hold a returning phone's plaintext password until their memo entry
goes (:mod:`zengine.fastpath`). An expired entry found by a request, or met by the sweep at a
login, goes then; one that no request meets again would stay as long as the worker idles. This
drops it on its own, at most :data:`SLACK` seconds after it expires, with nothing added to a
request that hits the memo: an entry is added here once, when its first parse is kept.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable

#: Seconds past its due time by which an action has run at most (the event loop permitting).
#: One timer serves every action due within that much of the earliest: a busy worker, whose
#: entries expire one after another, wakes at most once a second for them, and a password
#: outlives its entry's TTL by at most a second (against 30 s by default, docs/security.md).
SLACK = 1.0


class Deadlines:
    """``add(when, action)`` on the event loop's thread; ``action()`` runs on that loop once
    ``clock()`` has passed ``when``, within :data:`SLACK`, unless :meth:`close` came first.
    The timer is armed only while an action is pending; ``close`` may come from any thread
    (``Runtime.stop`` runs in a worker thread)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        #: (when, a tie-breaker: actions are not ordered, action), earliest first.
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: When (``clock()`` time) the armed timer fires.
        self._timer_at = 0.0
        self._closed = False

    def __len__(self) -> int:
        return len(self._due)

    def add(self, when: float, action: Callable[[], None]) -> None:
        """Without a running loop (a direct call, a test) nothing would ever fire: ignored."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        with self._lock:
            if self._closed:
                return
            heapq.heappush(self._due, (when, next(self._seq), action))
            self._loop = loop
            self._arm()

    def _arm(self) -> None:
        """Under the lock, on the loop's thread: the timer for the earliest action, unless
        the armed one fires by then anyway."""
        loop = self._loop
        if not self._due or loop is None:
            return
        at = self._due[0][0] + SLACK
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer = loop.call_later(max(0.0, at - self._clock()), self._fire)
        self._timer_at = at

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
            now = self._clock()
            due = []
            while self._due and self._due[0][0] <= now:
                due.append(heapq.heappop(self._due)[2])
        try:
            for action in due:
                action()
        finally:
            with self._lock:
                if not self._closed:
                    self._arm()

    def close(self) -> None:
        """No action runs any more; the timer is cancelled (on its loop's thread: a handle
        is the loop's, and the cancelled one lets go of this object at once)."""
        with self._lock:
            self._closed = True
            self._due.clear()
            timer, self._timer = self._timer, None
            loop = self._loop
        if timer is None or loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            timer.cancel()
        elif not loop.is_closed():
            try:
                loop.call_soon_threadsafe(timer.cancel)
            except RuntimeError:  # closed in the meantime: its handles went with it
                pass
