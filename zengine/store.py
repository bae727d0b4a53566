"""The shared store: small key-value state that every worker and instance must agree on.

The login guard keeps its counters here; a verified-login cache can too. The core provides
:class:`MemoryStore` (one process: the embedded default); a plugin answering
:func:`~zengine.hookspecs.zengine_shared_store` provides another (the guard's Redis store when
``[plugins.guard] redis_url`` is set). Use it as ``runtime.store``.

Keys are plain strings; namespace yours as ``"<plugin>:<tenant>:..."``; the store adds its own
prefix (the Redis store's ``key_prefix``). Values are bytes. Every method may raise
:class:`~zengine.errors.StoreUnavailable`; the caller decides whether that fails open or closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class SharedStore(Protocol):
    """What every shared store offers. Each call is atomic on its own."""

    #: ``"memory"`` or ``"redis"``: for logs and ``check-config``.
    kind: str

    def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent or expired."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``; it expires after ``ttl`` seconds (never when ``None``)."""

    def incr(self, key: str, ttl: float) -> int:
        """Add one and return the new count; a new key expires after ``ttl`` seconds."""

    def delete(self, key: str) -> int:
        """Remove ``key``; returns 1 if it existed."""

    def keys(self, prefix: str) -> list[str]:
        """Every live key starting with ``prefix`` (operator tools, not the request path)."""

    def close(self) -> None:
        """Release connections; called at shutdown."""


class MemoryStore:
    """A :class:`SharedStore` in this process's memory, guarded by one lock. Expired keys
    are dropped when touched and in a sweep every ``sweep_every`` writes, so memory stays
    bounded by the live keys."""

    kind = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sweep_every: int = 1024) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._writes = 0
        self._sweep_every = sweep_every

    def _now(self) -> float:
        return self._clock()

    def _live(self, key: str, now: float) -> tuple[bytes, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[1] is not None and item[1] <= now:
            del self._data[key]
            return None
        return item

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes % self._sweep_every == 0:
            for key in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
                del self._data[key]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key, self._now())
            return item[0] if item is not None else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._lock:
            now = self._now()
            self._data[key] = (value, now + ttl if ttl is not None else None)
            self._wrote(now)

    def incr(self, key: str, ttl: float) -> int:
        with self._lock:
            now = self._now()
            item = self._live(key, now)
            count = int(item[0]) + 1 if item is not None else 1
            expires = item[1] if item is not None else now + ttl
            self._data[key] = (str(count).encode(), expires)
            self._wrote(now)
            return count

    def delete(self, key: str) -> int:
        with self._lock:
            return 1 if self._data.pop(key, None) is not None else 0

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            now = self._now()
            return sorted(k for k in list(self._data) if k.startswith(prefix)
                          and self._live(k, now) is not None)

    def close(self) -> None:
        with self._lock:
            self._data.clear()
