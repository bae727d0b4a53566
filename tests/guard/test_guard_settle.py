"""A returning login with the guard and the verified-login cache on Redis: one round trip
(the check settles it), and every case where a success would change something, or where the
login fails after all, still recorded as before (real local Redis, a prefix per test)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.redis_store import REDIS_URL, RedisTestStore, new_prefix, require_redis
from tests.test_login_cache import (
    CHEAP,
    SECRET,
    Counted,
    guard_runtime,
    guarded_login,
    users_toml,
)
from zengine.errors import TooManyAttempts
from zengine.logincache import LocalEntries, LoginCache, LoginCacheSettings, LoginKey
from zengine.models import Identity, LoginAttempt, Rejected
from zengine.runtime import Runtime
from zengine_guard.guard import Guard
from zengine_guard.redis_state import RedisState
from zengine_guard.state import Who
from zengine_guard.store import RedisStore
from zengine_static.users import load_users

ALICE = Who("", "alice", "127.0.0.1")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    require_redis()
    prefix = new_prefix()
    runtime = guard_runtime(tmp_path, prefix)
    yield runtime
    runtime.stop()
    RedisTestStore(REDIS_URL, prefix).wipe()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Packets redis-py sends: one per command, script call or pipeline."""
    from redis.connection import AbstractConnection

    sent = [0]
    real = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        real(self, command, check_health)  # type: ignore[no-untyped-call]  # redis-py's is untyped

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def state_of(runtime: Runtime) -> RedisState:
    guard = runtime.state["guard"]
    assert isinstance(guard, Guard) and isinstance(guard.state, RedisState)
    return guard.state


def alice_entry(runtime: Runtime) -> str:
    """The Redis key of alice's verified-login cache entry (the guard's store holds it)."""
    entries = runtime.logins.entries
    assert isinstance(entries, RedisStore)
    return entries.prefix + runtime.logins.slot("alice")


def pending(state: RedisState) -> int:
    return int(state.client.zcard(state._k("", "lock", "alice") + ":pending"))


def test_returning_login_is_one_round_trip(runtime: Runtime, trips: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(runtime, monkeypatch)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)  # verified: 2 trips
    trips[0] = 0
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    assert counted.calls == 1  # a cache hit
    assert trips[0] == 1  # the check read the entry and settled the login: no SUCCEED
    assert pending(state_of(runtime)) == 0  # and left nothing in flight


def test_a_settled_login_that_fails_records_its_failure_and_no_one_elses_flight(
        runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tag says "the last password verified", not "still valid": after a password change
    (a new stored hash) the old password settles its check, then fails the slow check; the
    failure is recorded, and the in-flight mark of another login is left alone."""
    counted = Counted(runtime, monkeypatch)
    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    other = Who("", "alice", "192.0.2.7")
    assert state.check(other, time.time()).action == "ok"  # another login, in flight
    assert pending(state) == 1
    (tmp_path / "users.toml").write_text(users_toml("new-password"))
    runtime.state["static"] = load_users(tmp_path / "users.toml", runtime.settings.profiles)
    result = guarded_login(runtime, "wonderland")
    assert isinstance(result, Rejected)
    assert counted.calls == 2  # the slow check, against the new hash
    assert pending(state) == 1  # the other login's mark is still there
    acct = state._k("", "acct", "alice")
    assert state.client.zcard(acct) == 1


def test_a_disabled_user_with_a_settled_check_is_refused_and_counted(
        runtime: Runtime, tmp_path: Path) -> None:
    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    users = load_users(tmp_path / "users.toml", runtime.settings.profiles)
    runtime.state["static"] = {"alice": users["alice"].model_copy(update={"enabled": False})}
    result = guarded_login(runtime, "wonderland")
    assert isinstance(result, Rejected) and result.reason == "user disabled"
    assert state.client.zcard(state._k("", "acct", "alice")) == 1


def test_failures_of_the_address_are_cleared_by_a_returning_success(
        runtime: Runtime, trips: list[int]) -> None:
    """A success from an address with failures must clear them: no settling then."""
    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    state.check(ALICE, time.time())
    state.fail(ALICE, "0123456789abcdef", time.time())  # a wrong password, entry kept
    acct = state._k("", "acct", "alice")
    assert state.client.zcard(acct) == 1
    trips[0] = 0
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    assert trips[0] == 2  # check, then SUCCEED
    assert state.client.zcard(acct) == 0
    assert pending(state) == 0


def test_familiarity_past_its_refresh_is_refreshed_by_a_returning_success(
        runtime: Runtime, trips: list[int]) -> None:
    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    fam = state._k("", "fam", "alice")
    two_days_ago = int((time.time() - 2 * 86400) * 1000)
    state.client.zadd(fam, {"127.0.0.1": two_days_ago})
    trips[0] = 0
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    assert trips[0] == 2  # not settled: SUCCEED refreshed the address
    seen = state.client.zscore(fam, "127.0.0.1")
    assert isinstance(seen, float) and seen > (time.time() - 60) * 1000
    # Within the refresh share of familiar_days the next one settles again.
    trips[0] = 0
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    assert trips[0] == 1


def test_an_unfamiliar_address_is_never_settled(runtime: Runtime, trips: list[int]) -> None:
    """A first success from an address makes it familiar: SUCCEED must run."""
    from pydantic import SecretStr as Secret

    from tests.test_login_cache import REQUEST
    from zengine.models import Credentials
    from zengine.pipeline import check_login

    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    attempt = LoginAttempt(username="alice", secret=Secret("wonderland"),
                           client_addr="198.51.100.9")
    trips[0] = 0
    result = check_login(attempt, Credentials("alice", attempt.secret), REQUEST, runtime)
    assert isinstance(result, Identity)
    assert trips[0] == 2
    assert state.client.zscore(state._k("", "fam", "alice"), "198.51.100.9") is not None


def test_entry_is_digest_then_tag_and_an_old_entry_still_hits() -> None:
    cache = LoginCache(LoginCacheSettings(secret=SecretStr(SECRET)), SECRET.encode(),
                       LocalEntries(16))
    key = LoginKey("static", None, "alice", CHEAP.hash("wonderland"))
    cache.remember(key, "wonderland")
    entry = cache.entries.get(cache.slot("alice"))
    assert entry == cache._digest(key, "wonderland") + cache.tag("alice", "wonderland")
    assert len(cache.tag("alice", "wonderland")) == 16
    assert cache.tag("alice", "wonderland") not in (cache.tag("alice", "guess"),
                                                    cache.tag("bob", "wonderland"))
    other_tenant = LoginCache(cache.settings, SECRET.encode(), LocalEntries(16), "t2")
    assert other_tenant.tag("alice", "wonderland") != cache.tag("alice", "wonderland")
    # An entry written before the tag (the digest alone) still hits.
    cache.entries.set(cache.slot("alice"), cache._digest(key, "wonderland"), 60)
    assert cache.check(key, "wonderland")


def test_a_settled_check_whose_record_never_came_does_not_settle_the_next(
        runtime: Runtime) -> None:
    """The chain raised after a settled check (no record); the same attempt object checked
    again, now with a failure of its address, must get its success recorded."""
    from zengine import logincache
    from zengine.models import LoginResult

    state = state_of(runtime)
    guard = runtime.state["guard"]
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    attempt = LoginAttempt(username="alice", secret=SecretStr("wonderland"),
                           client_addr="127.0.0.1")
    with logincache.prefetching():
        guard.check(attempt, runtime.logins)  # settled; its record never comes
    state.fail(ALICE, "0123456789abcdef", time.time())
    with logincache.prefetching():
        guard.check(attempt, runtime.logins)  # not settled: a failure of this address
        guard.record(attempt, LoginResult(accepted=True))
    assert state.client.zcard(state._k("", "acct", "alice")) == 0


def spend_flood(state: RedisState) -> None:
    """The tenant's verification flood used up, this window and the next (no race with the
    window's end)."""
    flood_ms = state.config.flood_window * 1000
    bucket = int(time.time() * 1000) // flood_ms
    for b in (bucket, bucket + 1):
        state.client.set(f"{state._k('', 'flood')}:{b}", 10**6, px=60000)


def test_a_settled_login_refused_by_the_flood_leaves_other_logins_in_flight(
        runtime: Runtime, tmp_path: Path) -> None:
    """After a password change the old password still settles its check (the tag holds no
    stored hash), misses the cache and asks for a slow verification; the flood limit refuses
    it. It held no in-flight mark, so none is removed: not another login's."""
    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    other = Who("", "alice", "192.0.2.7")
    assert state.check(other, time.time()).action == "ok"  # another login, in flight
    assert pending(state) == 1
    (tmp_path / "users.toml").write_text(users_toml("new-password"))
    runtime.state["static"] = load_users(tmp_path / "users.toml", runtime.settings.profiles)
    spend_flood(state)
    with pytest.raises(TooManyAttempts):
        guarded_login(runtime, "wonderland")
    assert pending(state) == 1  # the other login's mark is still there


def test_an_unsettled_login_refused_by_the_flood_gives_its_place_back(
        runtime: Runtime) -> None:
    state = state_of(runtime)
    spend_flood(state)
    with pytest.raises(TooManyAttempts):
        guarded_login(runtime, "wonderland")  # no entry: not settled, its mark goes
    assert pending(state) == 0


def test_only_the_last_verified_passwords_tag_settles(runtime: Runtime) -> None:
    state = state_of(runtime)
    logins = runtime.logins
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    key = alice_entry(runtime)
    for password, settles in (("guess", False), ("wonderland", True)):
        verdict, value, settled = state.check_reading(ALICE, time.time(), key,
                                                      logins.tag("alice", password))
        assert verdict.action == "ok" and value is not None
        assert settled is settles, password
    assert pending(state) == 1  # the guess's check left its mark; the settled one none


def test_a_wrong_password_is_in_flight_while_it_is_verified(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through check_login: a guess for a user with a cached entry is not settled (its tag is
    not the entry's), so it holds an in-flight place, which its failure gives back."""
    state = state_of(runtime)
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    seen: list[int] = []
    real = runtime.passwords.verify

    def verify(stored: str | None, password: str) -> bool:
        seen.append(pending(state))
        return real(stored, password)

    monkeypatch.setattr(runtime.passwords, "verify", verify)
    assert isinstance(guarded_login(runtime, "guess"), Rejected)
    assert seen == [1]
    assert pending(state) == 0
    assert state.client.zcard(state._k("", "acct", "alice")) == 1


def test_only_the_settled_attempt_skips_its_success_record(runtime: Runtime) -> None:
    """Another attempt recorded in the context of a settled one still gets its SUCCEED (here:
    its address's failure cleared)."""
    from zengine import logincache
    from zengine.models import LoginResult

    state = state_of(runtime)
    guard = runtime.state["guard"]
    assert isinstance(guarded_login(runtime, "wonderland"), Identity)
    there = LoginAttempt(username="alice", secret=SecretStr("wonderland"),
                         client_addr="192.0.2.7")
    assert state.check(Who("", "alice", "192.0.2.7"), time.time()).action == "ok"
    state.fail(Who("", "alice", "192.0.2.7"), "0123456789abcdef", time.time())
    here = LoginAttempt(username="alice", secret=SecretStr("wonderland"),
                        client_addr="127.0.0.1")
    with logincache.prefetching():
        guard.check(here, runtime.logins)  # settled
        guard.record(there, LoginResult(accepted=True))
        guard.record(here, LoginResult(accepted=True))
    assert state.client.zcard(state._k("", "acct", "alice")) == 0


@pytest.fixture
def untagged(tmp_path: Path) -> Iterator[Runtime]:
    """``[login_cache] password_tag = false``."""
    require_redis()
    prefix = new_prefix()
    runtime = guard_runtime(tmp_path, prefix, password_tag=False)
    yield runtime
    runtime.stop()
    RedisTestStore(REDIS_URL, prefix).wipe()


def test_without_the_password_tag_entries_hit_and_no_login_settles(
        untagged: Runtime, trips: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(untagged, monkeypatch)
    state = state_of(untagged)
    logins = untagged.logins
    assert isinstance(guarded_login(untagged, "wonderland"), Identity)
    entry = state.client.get(alice_entry(untagged))
    assert isinstance(entry, bytes) and len(entry) == 32  # the digest alone: no tag
    for _ in range(2):
        trips[0] = 0
        assert isinstance(guarded_login(untagged, "wonderland"), Identity)
        assert trips[0] == 2  # the check (reading the entry), then SUCCEED: nothing settled
    assert counted.calls == 1  # the returning logins hit the cache
    assert pending(state) == 0
    # An entry written with its tag before the switch does not settle either.
    state.client.set(alice_entry(untagged), entry + logins.tag("alice", "wonderland"), ex=60)
    trips[0] = 0
    assert isinstance(guarded_login(untagged, "wonderland"), Identity)
    assert trips[0] == 2 and counted.calls == 1


def test_without_the_password_tag_no_tag_is_written() -> None:
    settings = LoginCacheSettings(secret=SecretStr(SECRET), password_tag=False)
    cache = LoginCache(settings, SECRET.encode(), LocalEntries(16))
    key = LoginKey("static", None, "alice", CHEAP.hash("wonderland"))
    cache.remember(key, "wonderland")
    assert cache.entries.get(cache.slot("alice")) == cache._digest(key, "wonderland")
    assert cache.check(key, "wonderland") and not cache.check(key, "guess")


def test_password_tag_must_be_a_boolean() -> None:
    from zengine.errors import ConfigError
    from zengine.settings import settings_from_mapping

    assert settings_from_mapping({}, environ={}).login_cache.password_tag is True
    with pytest.raises(ConfigError, match="password_tag"):
        settings_from_mapping({"login_cache": {"password_tag": "sometimes"}}, environ={})
