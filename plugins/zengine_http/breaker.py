"""A circuit breaker: after ``failures`` consecutive failed lookups the service is not asked
for ``reset`` seconds, and every request answers 503 at once instead of waiting out its
timeouts; then one trial request is let through, and its result closes or re-opens it.

Why not pybreaker: ``CircuitBreaker.call`` holds one lock for the whole guarded call, so every
request to the service would wait for the one before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BreakerOpen(Exception):
    """The breaker is open: the service is not asked."""


class Breaker:
    def __init__(self, failures: int, reset: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.reset = reset
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.reset else "open"

    def before(self) -> bool:
        """Raise :class:`BreakerOpen`, or return whether this call is the trial request."""
        with self._lock:
            if self._opened_at is None:
                return False
            if self._clock() - self._opened_at < self.reset or self._trial_running:
                raise BreakerOpen
            self._trial_running = True
            return True

    def succeeded(self, trial: bool) -> None:
        with self._lock:
            if trial:
                self._trial_running = False
            self._failures = 0
            self._opened_at = None

    def failed(self, trial: bool) -> bool:
        """Count a failure; return whether it opened the breaker."""
        with self._lock:
            if trial:
                self._trial_running = False
            self._failures += 1
            if trial or (self._opened_at is None and self._failures >= self.threshold):
                self._opened_at = self._clock()
                return True
            return False

    def released(self, trial: bool) -> None:
        """The call ended with neither verdict (an answer that says nothing about health)."""
        if trial:
            with self._lock:
                self._trial_running = False
