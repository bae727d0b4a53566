"""The core's login-guard contract: the check/result hooks around the chain, ``Abstain``, the
shared store hook, the bounded verification pool and the client address from trusted proxies."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.testclient import TestClient

from tests.test_hooks import Backend, run, runtime_with
from zengine import hookimpl
from zengine.addresses import ClientAddresses, forwarded_for, parse_address
from zengine.app import create_app
from zengine.errors import Overloaded, TooManyAttempts
from zengine.models import (
    Abstain,
    Credentials,
    Identity,
    LoginAttempt,
    LoginResult,
    ProvisionRequest,
    Rejected,
)
from zengine.passwords import Passwords, PasswordSettings, VerifyPool
from zengine.pipeline import check_login
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine.store import MemoryStore, SharedStore
from zengine.testing import plugin_list


class Guard:
    """Refuses usernames in ``blocked``; records every result."""

    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked
        self.checked: list[LoginAttempt] = []
        self.results: list[tuple[LoginAttempt, LoginResult]] = []

    @hookimpl
    def zengine_login_check(self, attempt: LoginAttempt) -> None:
        self.checked.append(attempt)
        if attempt.username in self.blocked:
            raise TooManyAttempts("locked", public_message="Too many attempts, try again in "
                                  "2 minutes.", retry_after=120)

    @hookimpl
    def zengine_login_result(self, attempt: LoginAttempt, result: LoginResult) -> None:
        self.results.append((attempt, result))


def test_zengine_login_check_refuses_before_the_chain_with_429_and_retry_after() -> None:
    backend = Backend("a", {"alice": "pw"}, ["1"])
    guard = Guard({"alice"})
    runtime = runtime_with(("a", backend), ("guard", guard))
    reply = run(runtime, "u=alice&p=pw")
    assert reply.status == 429
    assert ("Retry-After", "120") in reply.headers
    assert b"Too many attempts, try again in 2 minutes." in reply.body
    # Refused before any backend was asked, and a correct password does not help.
    assert backend.asked == 0
    assert guard.results == []
    assert guard.checked[0].username == "alice"
    assert guard.checked[0].secret.get_secret_value() == "pw"
    assert "pw" not in repr(guard.checked[0])


def test_zengine_login_check_status_is_configurable() -> None:
    runtime = runtime_with(("a", Backend("a", {})), ("guard", Guard({"bob"})),
                           config={"errors": {"status": {"too_many_attempts": 200}}})
    assert run(runtime, "u=bob&p=x").status == 200


def test_zengine_login_result_sees_accept_reject_and_unknown_alike() -> None:
    guard = Guard(set())
    runtime = runtime_with(("a", Backend("a", {"alice": "pw"}, ["1"])), ("guard", guard))
    run(runtime, "u=alice&p=pw")
    run(runtime, "u=alice&p=wrong")
    run(runtime, "u=nobody&p=wrong")
    results = [result for _, result in guard.results]
    assert results[0].accepted and results[0].identity is not None
    assert results[0].backend == "a"
    assert not results[1].accepted and results[1].backend == "a"
    assert not results[2].accepted and results[2].backend is None
    assert [attempt.client_addr for attempt, _ in guard.results] == ["test"] * 3


def test_zengine_login_result_exceptions_never_change_the_answer() -> None:
    class Broken:
        @hookimpl
        def zengine_login_result(self) -> None:
            raise RuntimeError("boom")

    runtime = runtime_with(("a", Backend("a", {"alice": "pw"}, ["1"])), ("broken", Broken()))
    assert run(runtime, "u=alice&p=pw").status == 200


def test_zengine_authenticate_abstain_skips_the_dummy_verification() -> None:
    class Spent:
        @hookimpl
        def zengine_authenticate(self, credentials: Credentials) -> Abstain:
            return Abstain("spent")

    class Counting:
        dummy = 0

        def verify(self, stored: str | None, password: str) -> bool:
            Counting.dummy += stored is None
            return False

    # Last backend asked abstained after spending its cost: no argon2 on top.
    runtime = runtime_with(("a", Backend("a", {})), ("spent", Spent()),
                           config={"auth": {"chain": ["a", "spent"]}})
    runtime.__dict__["passwords"] = Counting()
    assert b"Wrong username or password" in run(runtime, "u=nobody&p=x").body
    assert Counting.dummy == 0
    # A plain abstention last: the core spends one.
    runtime = runtime_with(("a", Backend("a", {})), ("spent", Spent()),
                           config={"auth": {"chain": ["spent", "a"]}})
    runtime.__dict__["passwords"] = Counting()
    run(runtime, "u=nobody&p=x")
    assert Counting.dummy == 1


def test_zengine_shared_store_provided_by_a_plugin_and_closed_at_stop() -> None:
    class Store(MemoryStore):
        closed = False

        def close(self) -> None:
            Store.closed = True

    provided = Store()

    class Provider:
        @hookimpl
        def zengine_shared_store(self) -> SharedStore:
            return provided

        @hookimpl
        def zengine_startup(self, runtime: Runtime) -> None:
            # Startup already sees the store.
            runtime.store.set("provider:seen", b"1")

    runtime = runtime_with(("provider", Provider()))
    assert runtime.store is provided
    assert provided.get("provider:seen") == b"1"
    runtime.stop()
    assert Store.closed


def test_zengine_shared_store_defaults_to_memory() -> None:
    runtime = runtime_with()
    assert isinstance(runtime.store, MemoryStore)
    assert isinstance(runtime.store, SharedStore)


def test_memory_store_expires_counts_and_lists() -> None:
    now = [100.0]
    store = MemoryStore(clock=lambda: now[0], sweep_every=2)
    assert store.incr("g:a", ttl=10) == 1
    assert store.incr("g:a", ttl=10) == 2
    store.set("g:b", b"x", ttl=5)
    store.set("other", b"y")
    assert store.keys("g:") == ["g:a", "g:b"]
    now[0] += 6
    assert store.get("g:b") is None
    assert store.keys("g:") == ["g:a"]
    now[0] += 5
    # The count's window is its first increment's: it starts again.
    assert store.incr("g:a", ttl=10) == 1
    assert store.delete("other") == 1
    assert store.delete("other") == 0


def test_verify_pool_refuses_beyond_its_queue_at_once() -> None:
    pool = VerifyPool(size=1, queue=1)
    release = threading.Event()

    def held() -> bool:  # bounded: a failed assertion below left the run hanging at its exit
        return release.wait(30)

    first = pool.submit(held)
    second = pool.submit(held)
    start = time.monotonic()
    with pytest.raises(Overloaded) as caught:
        pool.submit(held)
    # At once: a submit that waited for a slot would wait 30 s here (nothing is released until
    # below). 0.05 s was within reach of a stall on a loaded CI box (0.25 s measured).
    assert time.monotonic() - start < 1.0
    assert caught.value.retry_after == 2
    assert pool.in_flight == 2
    release.set()
    assert first.result(5) and second.result(5)
    assert pool.in_flight == 0  # answered only once their slots are free (no sleep needed)
    assert pool.run(lambda: 42) == 42
    pool.close()


def test_verify_pool_size_defaults_to_the_cores() -> None:
    import os

    assert VerifyPool(0, 4).size == (os.cpu_count() or 1)


def test_workers_share_the_cores_for_verifications(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker process builds its own pool: with the default size they divide the cores,
    so 2 workers on 2 cores run 2 argon2 verifications at once, not 4 at half speed."""
    import zengine.passwords as passwords_module

    monkeypatch.setattr(passwords_module, "cores", lambda: 4)
    sized = {workers: Passwords(PasswordSettings(), workers=workers).pool.size
             for workers in (1, 2, 3, 8)}
    assert sized == {1: 4, 2: 2, 3: 1, 8: 1}
    # An explicit size is per worker, whatever the count.
    assert Passwords(PasswordSettings(pool_size=3), workers=8).pool.size == 3
    runtime = build_runtime(settings_from_mapping({"server": {"workers": 2}}, environ={}),
                            load_entrypoints=False)
    assert runtime.passwords.pool.size == 2


def test_password_verification_runs_in_the_pool_off_the_event_loop() -> None:
    import asyncio

    passwords = Passwords(PasswordSettings(time_cost=1, memory_kib=64, parallelism=1))
    stored = passwords.hash("secret")
    seen: list[str] = []
    original = passwords._verify

    def spy(target: str, password: str) -> bool:
        seen.append(threading.current_thread().name)
        return original(target, password)

    passwords._verify = spy  # type: ignore[method-assign]
    assert passwords.verify(stored, "secret")

    async def on_loop() -> bool:
        return await passwords.verify_async(stored, "secret")

    assert asyncio.run(on_loop())
    assert all(name.startswith("verify") for name in seen) and len(seen) == 2
    assert not passwords.verify(None, "secret")
    passwords.pool.close()


def test_overloaded_pool_is_503_with_retry_after_over_http() -> None:
    """Every slot and queue place taken: the next login is answered at once with 503."""
    from tests.conftest import EXAMPLE_CONFIG
    from zengine.settings import load_settings

    # A floor of 1.5 s, not the default 0.4: the 503 is told from an answer held to the floor
    # by more than a stall on a loaded CI box (0.25 s measured).
    settings = load_settings(EXAMPLE_CONFIG, environ={"ZENGINE_PASSWORDS__POOL_SIZE": "1",
                                                      "ZENGINE_PASSWORDS__POOL_QUEUE": "0",
                                                      "ZENGINE_AUTH__FAILURE_FLOOR_MS": "1500"})
    app = create_app(settings, load_entrypoints=False,
                     plugins=plugin_list("zoiper", "static", "urls", "audit"))
    release = threading.Event()
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        busy = runtime.passwords.pool.submit(release.wait)
        start = time.monotonic()
        response = client.get("/id.php", params={"u": "alice", "p": "wrong"})
        elapsed = time.monotonic() - start
        release.set()
        busy.result(5)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert b"busy" in response.content
        assert elapsed < settings.auth.failure_floor_ms / 1000
        assert client.get("/id.php", params={"u": "alice", "p": "wrong"}).status_code == 200


# -- client address -----------------------------------------------------------------------

def _headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(k.lower().encode(), v.encode()) for k, v in pairs])


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.43", "192.0.2.43"), ("192.0.2.43:47011", "192.0.2.43"),
    ('"[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"), ("2001:db8::1", "2001:db8::1"),
    ("::ffff:10.0.0.1", "10.0.0.1"), ("unknown", None), ("_hidden", None), ("", None),
])
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (str(address) if address is not None else None) == expected


def test_forwarded_header_parsing_rfc7239() -> None:
    assert forwarded_for(['for=192.0.2.60;proto=http;by=203.0.113.43',
                          'For="[2001:db8:cafe::17]:4711", for=unknown',
                          'proto=https;host="a,b;c"']) == [
        "192.0.2.60", '"[2001:db8:cafe::17]:4711"', "unknown", ""]


def test_headers_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    spoof = _headers(("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"))
    assert ClientAddresses(()).resolve("203.0.113.9", spoof) == "203.0.113.9"
    assert ClientAddresses(["10.0.0.0/8"]).resolve("203.0.113.9", spoof) == "203.0.113.9"


def test_the_peer_is_written_alike_whether_or_not_it_was_seen_before() -> None:
    # The peer's parsed form is kept per peer string: the second answer is the first one.
    addresses = ClientAddresses(())
    for peer, shown in (("::ffff:192.0.2.1", "192.0.2.1"), ("2001:DB8::1", "2001:db8::1"),
                        ("unix-socket", "unix-socket"), ("", ""), ("192.0.2.7", "192.0.2.7")):
        assert addresses.resolve(peer, _headers()) == shown
        assert addresses.resolve(peer, _headers()) == shown
    # A trusted peer still walks the headers, cached or not.
    trusted = ClientAddresses(["::ffff:0:0/96", "192.0.2.0/24"])
    xff = _headers(("X-Forwarded-For", "198.51.100.9"))
    assert trusted.resolve("192.0.2.7", xff) == "198.51.100.9"
    assert trusted.resolve("192.0.2.7", _headers()) == "192.0.2.7"


def test_trusted_proxy_chain_is_walked_from_the_right() -> None:
    addresses = ClientAddresses(["10.0.0.0/8", "127.0.0.1"])
    # The client can prepend anything: only the hop our proxy added counts.
    xff = _headers(("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.2.3"))
    assert addresses.resolve("127.0.0.1", xff) == "198.51.100.7"
    # Repeated header lines are one list, in order.
    lines = _headers(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.8"))
    assert addresses.resolve("127.0.0.1", lines) == "198.51.100.8"
    fwd = _headers(("Forwarded", 'for="[2001:db8::5]:1234", for=10.0.0.2'),
                   ("X-Forwarded-For", "6.6.6.6"))
    assert addresses.resolve("10.0.0.1", fwd) == "2001:db8::5"
    # Garbage stops the walk at the last trusted hop; nothing at all leaves the peer.
    assert addresses.resolve("127.0.0.1", _headers(("X-Forwarded-For", "evil, 10.0.0.9"))) \
        == "10.0.0.9"
    assert addresses.resolve("127.0.0.1", _headers()) == "127.0.0.1"


def test_trusted_proxies_setting_is_validated() -> None:
    from zengine.errors import ConfigError

    with pytest.raises(ConfigError, match="not-an-ip"):
        settings_from_mapping({"server": {"trusted_proxies": ["not-an-ip"]}}, environ={})


def test_real_client_address_reaches_log_audit_and_guard_over_http() -> None:
    from tests.conftest import EXAMPLE_CONFIG
    from zengine.settings import load_settings

    guard = Guard(set())
    audits: list[Any] = []

    class Audit:
        @hookimpl
        def zengine_audit(self, event: Any) -> None:
            audits.append(event)

    base = load_settings(EXAMPLE_CONFIG, environ={})
    import dataclasses

    from zengine.settings import ServerSettings

    settings = dataclasses.replace(base, server=ServerSettings(trusted_proxies=("127.0.0.1",)))
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list("zoiper", "static", "urls"), ("guard", guard),
                              ("audit-spy", Audit())])
    # The TestClient's peer, as a proxy on this host would be.
    client = TestClient(app, client=("127.0.0.1", 50000))
    with client:
        client.get("/id.php", params={"u": "alice", "p": "wrong"},
                   headers={"X-Forwarded-For": "198.51.100.23"})
    assert guard.checked[0].client_addr == "198.51.100.23"
    assert audits[0].client_addr == "198.51.100.23"


def test_login_attempt_repr_hides_the_secret() -> None:
    attempt = LoginAttempt("u", SecretStr("hunter2"), "1.2.3.4")
    assert "hunter2" not in repr(attempt) and "hunter2" not in str(attempt)


class Verifications:
    """Counts the logins announced to zengine_login_verification; refuses past ``budget``."""

    def __init__(self, budget: int = 1000) -> None:
        self.budget = budget
        self.seen: list[str] = []
        self.results: list[LoginResult] = []

    @hookimpl
    def zengine_login_verification(self, attempt: LoginAttempt) -> None:
        self.seen.append(attempt.username)
        if len(self.seen) > self.budget:
            raise TooManyAttempts("flood", public_message="Busy, try again in 1 minute.",
                                  retry_after=7)

    @hookimpl
    def zengine_login_result(self, result: LoginResult) -> None:
        self.results.append(result)


def test_zengine_login_verification_sees_cache_misses_only(tmp_path: Path) -> None:
    """Real static backend, real argon2 and verified-login cache: a cached login never
    announces; a miss, a wrong password and an unknown user each announce exactly once."""
    from tests.test_login_cache import guarded_login, static_runtime, users_toml

    spy = Verifications()
    runtime = static_runtime(tmp_path, users_toml("wonderland"), extra=[("spy", spy)])
    try:
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)  # miss
        for _ in range(5):
            assert isinstance(guarded_login(runtime, "wonderland"), Identity)  # hits
        assert spy.seen == ["alice"]
        assert isinstance(guarded_login(runtime, "wrong"), Rejected)
        assert spy.seen == ["alice", "alice"]
        credentials = Credentials("nobody", SecretStr("x"))
        attempt = LoginAttempt(username="nobody", secret=credentials.password,
                               client_addr="127.0.0.1")
        request = ProvisionRequest(path="/id.php", params={}, headers={},
                                   client_addr="127.0.0.1", credentials=None, version_raw=None)
        assert check_login(attempt, credentials, request, runtime) is None  # the dummy
        assert spy.seen == ["alice", "alice", "nobody"]
        # Outside a login (operator tools) nothing is announced.
        runtime.passwords.verify(None, "x")
        assert len(spy.seen) == 3
    finally:
        runtime.stop()


def test_zengine_login_verification_refusal_is_429_with_retry_after() -> None:
    class Hashing(Backend):
        """Verifies through runtime.passwords, like the static and SQL backends."""

        @hookimpl
        def zengine_authenticate(self, credentials: Credentials,  # type: ignore[override]
                                 runtime: Runtime) -> Identity | Rejected | None:
            runtime.passwords.verify(None, credentials.password.get_secret_value())
            return super().zengine_authenticate(credentials)

    spy = Verifications(budget=0)
    backend = Hashing("a", {"alice": "pw"}, ["1"])
    runtime = runtime_with(("a", backend), ("spy", spy),
                           config={"passwords": {"time_cost": 1, "memory_kib": 64,
                                                 "parallelism": 1}})
    for query in ("u=alice&p=pw", "u=nobody&p=pw"):
        reply = run(runtime, query)
        assert reply.status == 429
        assert ("Retry-After", "7") in reply.headers
        assert b"Busy, try again in 1 minute." in reply.body
    # Refused before the backend decided: no result is recorded.
    assert spy.results == []
    assert spy.seen == ["alice", "nobody"]


def test_announce_verification_once_per_login_and_only_inside_one() -> None:
    from zengine.verifying import announce_verification, login_in_progress, verification_spent

    calls: list[int] = []
    announce_verification()
    assert not verification_spent()
    with login_in_progress(lambda: calls.append(1)):
        assert not verification_spent()
        announce_verification()
        announce_verification()  # a second backend, the dummy: free
        assert verification_spent()
    assert calls == [1]
    assert not verification_spent()
    with pytest.raises(RuntimeError), login_in_progress(lambda: calls.append(2)):
        announce_verification()
        raise RuntimeError("the chain failed")
    assert calls == [1, 2]
    assert not verification_spent()  # a login that raised is over too


def test_refused_logins_are_held_until_the_failure_floor_like_wrong_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked-out attacker's connection waits out the floor on the event loop for each 429
    (it cannot loop as fast as the CPU answers and take the CPU from the real user); a served
    login is not held. Sleeps are recorded, not waited for: no timing."""
    import asyncio

    from tests.conftest import BUILTINS, EXAMPLE_CONFIG
    from zengine.settings import load_settings

    real_sleep = asyncio.sleep
    slept: list[float] = []

    async def recorded(delay: float, *args: Any, **kwargs: Any) -> Any:
        slept.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr("zengine.app.asyncio.sleep", recorded)
    settings = load_settings(EXAMPLE_CONFIG, environ={"ZENGINE_AUTH__FAILURE_FLOOR_MS": "10000"})
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("guard", Guard({"mallory"}))])
    with TestClient(app) as client:
        def held(user: str, password: str, status: int) -> bool:
            slept.clear()
            answer = client.get("/id.php", params={"u": user, "p": password})
            assert answer.status_code == status
            return any(delay > 5 for delay in slept)

        assert held("mallory", "guess", 429)
        assert held("alice", "not-her-password", 200)  # the wrong-login document
        assert not held("alice", "wonderland", 200)
