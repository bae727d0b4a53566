"""``runtime.store`` on Redis: the :class:`~zengine.store.SharedStore` the guard provides
when ``[plugins.guard] redis_url`` is set, for every plugin (the guard's own counters use
server-side scripts on the same connection pool)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis

from zengine.errors import StoreUnavailable

T = TypeVar("T")


class RedisStore:
    kind = "redis"

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _run(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except (redis.RedisError, OSError) as exc:
            # The message may name the host; never the URL's password (redis-py omits it).
            raise StoreUnavailable(f"Redis unreachable: {type(exc).__name__}") from None

    def get(self, key: str) -> bytes | None:
        value: Any = self._run(lambda: self.client.get(self.prefix + key))
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        self._run(lambda: self.client.set(self.prefix + key, value, px=px))

    def incr(self, key: str, ttl: float) -> int:
        def call() -> int:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(self.prefix + key)
            # NX: the window starts at the first increment, as in MemoryStore.
            pipe.pexpire(self.prefix + key, max(1, int(ttl * 1000)), nx=True)
            count, _ = pipe.execute()
            return int(count)
        return self._run(call)

    def delete(self, key: str) -> int:
        return int(self._run(lambda: self.client.delete(self.prefix + key)))

    def keys(self, prefix: str) -> list[str]:
        pattern = "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in self.prefix + prefix)
        found = self._run(lambda: list(self.client.scan_iter(match=pattern + "*", count=500)))
        cut = len(self.prefix)
        return sorted((k.decode() if isinstance(k, bytes) else str(k))[cut:] for k in found)

    def close(self) -> None:
        # The guard owns the connection pool and closes it at its shutdown.
        pass
