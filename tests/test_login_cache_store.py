"""The verified-login cache in the shared store (the guard's real Redis store): entries expire
with their backend's TTL, and ``[login_cache] enabled = false`` neither reads nor writes entries,
even those other processes left there."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.redis_store import REDIS_URL, RedisTestStore, StorePlugin, new_prefix, require_redis
from tests.test_login_cache import (
    Counted,
    guard_runtime,
    guarded_login,
    login,
    static_runtime,
    users_toml,
)
from zengine.models import Identity


def test_guard_store_entries_expire_with_their_backend_ttl(tmp_path: Path) -> None:
    """Redis itself expires an entry: the TTL the cache asks for reaches the key."""
    require_redis()
    client = redis.Redis.from_url(REDIS_URL)
    for cache, expected in (({"backend_ttl": {"static": 77}}, 77), ({"ttl": 1234}, 1234)):
        prefix = new_prefix()
        runtime = guard_runtime(tmp_path, prefix, **cache)
        try:
            assert runtime.logins.entries.kind == "redis"
            assert isinstance(guarded_login(runtime, "wonderland"), Identity)
            key = prefix + runtime.logins.slot("alice")
            left = client.pttl(key)
            assert isinstance(left, int)
            assert (expected - 5) * 1000 < left <= expected * 1000, (cache, left)
        finally:
            runtime.stop()
            RedisTestStore(REDIS_URL, prefix).wipe()
    client.close()


def test_opt_out_ignores_entries_others_left_in_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process with the cache off (an operator just turned it off, the others still run
    with it on) pays every login in full although a valid entry is in Redis, and writes none."""
    require_redis()
    prefix = new_prefix()
    stored = RedisTestStore(REDIS_URL, prefix)
    users = users_toml("wonderland")  # one file, one hash: the entry would match in both
    on = static_runtime(tmp_path, users,
                        extra=[("teststore", StorePlugin(REDIS_URL, prefix))])
    try:
        assert isinstance(login(on, "wonderland"), Identity)
        assert len(stored.keys("login:")) == 1
    finally:
        on.stop()
    off = static_runtime(tmp_path, users,
                         extra=[("teststore", StorePlugin(REDIS_URL, prefix))], enabled=False)
    try:
        counted = Counted(off, monkeypatch)
        for _ in range(2):
            assert isinstance(login(off, "wonderland"), Identity)
        assert counted.calls == 2
        stored.wipe()
        assert isinstance(login(off, "wonderland"), Identity)
        assert stored.keys("login:") == []
    finally:
        off.stop()
        stored.wipe()
