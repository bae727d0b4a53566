"""The real local Redis (127.0.0.1:6379) with a key prefix of its own per test; never FLUSHALL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import service_missing
from zengine_guard.memory import MemoryState
from zengine_guard.redis_state import RedisState
from zengine_guard.settings import GuardSettings
from zengine_guard.state import GuardState

if TYPE_CHECKING:
    import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_client() -> redis.Redis:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"no Redis at 127.0.0.1:6379 ({type(exc).__name__})")
    return client


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted afterwards (and only those)."""
    value = f"zt-{uuid.uuid4().hex[:12]}:"
    yield value
    try:
        client = redis_client()
    except BaseException:
        return
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
def make_state(request: pytest.FixtureRequest,
               prefix: str) -> Callable[..., GuardState]:
    """Build the guard's state on the in-process store or on the real Redis."""

    def make(**overrides: object) -> GuardState:
        config = GuardSettings.model_validate({"key_prefix": prefix, **overrides})
        if request.param == "memory":
            return MemoryState(config)
        return RedisState(config, redis_client())

    return make


@pytest.fixture(params=["memory", "redis"])
def store_backend(request: pytest.FixtureRequest, prefix: str) -> dict[str, object]:
    """``[plugins.guard]`` settings for the in-process store or the real Redis."""
    if request.param == "memory":
        return {}
    redis_client()
    return {"redis_url": REDIS_URL, "key_prefix": prefix}
