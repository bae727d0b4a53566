"""A test-only :class:`~zengine.store.SharedStore` on the real local Redis, provided through the
``zengine_shared_store`` hook exactly as the guard's Redis store is, with its own key prefix."""

from __future__ import annotations

import secrets

import redis

from tests.conftest import service_missing
from zengine import hookimpl
from zengine.errors import StoreUnavailable
from zengine.runtime import Runtime

REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {type(exc).__name__}")


class RedisTestStore:
    kind = "redis"

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = prefix

    def _call(self, method: str, *args: object) -> object:
        try:
            return getattr(self.client, method)(*args)
        except redis.RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    def get(self, key: str) -> bytes | None:
        value = self._call("get", self.prefix + key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._call("set", self.prefix + key, value, None if ttl is None else int(ttl))

    def incr(self, key: str, ttl: float) -> int:
        count = self._call("incr", self.prefix + key)
        assert isinstance(count, int)  # INCR's reply
        return count

    def delete(self, key: str) -> int:
        removed = self._call("delete", self.prefix + key)
        assert isinstance(removed, int)  # DEL's reply
        return removed

    def keys(self, prefix: str) -> list[str]:
        found = self._call("keys", self.prefix + prefix + "*")
        assert isinstance(found, list)  # KEYS' reply: the names, as bytes
        return sorted(k.decode()[len(self.prefix):] for k in found)

    def close(self) -> None:
        self.client.close()

    def wipe(self) -> None:
        """Remove this test's keys only (never FLUSHDB: the Redis is shared)."""
        for key in self.client.scan_iter(self.prefix + "*"):
            self.client.delete(key)


class StorePlugin:
    """Registers as plugin ``teststore``; gives every runtime a store on ``url``/``prefix``."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix

    @hookimpl
    def zengine_shared_store(self, runtime: Runtime) -> RedisTestStore:
        return RedisTestStore(self.url, self.prefix)


def new_prefix() -> str:
    return f"zengine-test-{secrets.token_hex(6)}:"
