"""The guard through the whole app (HTTP in-process), on the in-process store and on Redis."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import BUILTINS, EXAMPLE_CONFIG, runtime_of
from tests.guard.conftest import REDIS_URL, redis_client
from zengine import hookimpl
from zengine.app import create_app
from zengine.cli import main
from zengine.log import configure_logging
from zengine.models import AuditEvent
from zengine.settings import LoggingSettings, load_settings, settings_from_mapping
from zengine.testing import plugin_list

ADDR = ("198.51.100.9", 40000)


class AuditSpy:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @hookimpl
    def zengine_audit(self, event: AuditEvent) -> None:
        self.events.append(event)


def make_client(guard: dict[str, Any], spy: AuditSpy | None = None,
                client: tuple[str, int] = ADDR, trusted: tuple[str, ...] = (),
                **extra: Any) -> TestClient:
    settings = load_settings(EXAMPLE_CONFIG, environ={"ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"})
    data: dict[str, Any] = {"plugins": {"guard": guard}, **extra}
    merged = settings_from_mapping(
        {**data}, environ={}, base_dir=settings.base_dir, source="test")
    # Keep the example's users: only the guard table (and extras) come from the test.
    import dataclasses

    settings = dataclasses.replace(
        settings, plugin_tables={**settings.plugin_tables, **merged.plugin_tables},
        errors=merged.errors if "errors" in extra else settings.errors,
        server=settings.server.model_copy(update={"trusted_proxies": trusted}) if trusted
        else settings.server)
    plugins = [*plugin_list(*BUILTINS, "guard"), *([("spy", spy)] if spy else [])]
    return TestClient(create_app(settings, load_entrypoints=False, plugins=plugins),
                      client=client)


def login(client: TestClient, user: str, password: str, path: str = "/id.php",
          headers: dict[str, str] | None = None) -> Any:
    return client.get(path, params={"u": user, "p": password}, headers=headers)


@pytest.fixture
def quick(store_backend: dict[str, object]) -> dict[str, object]:
    return {**store_backend, "lockout_threshold": 3}


def test_lockout_is_429_with_retry_after_and_identical_for_unknown_users(
        quick: dict[str, object]) -> None:
    spy = AuditSpy()
    with make_client(quick, spy) as client:
        answers = {}
        for user in ("alice", "nobody-here"):
            for i in range(3):
                assert b"Wrong username" in login(client, user, f"guess{i}").content
            locked = login(client, user, "guess-more")
            answers[user] = locked
            assert locked.status_code == 429
            assert locked.headers["retry-after"] == "60"
            assert locked.content == (b'<?xml version="1.0" encoding="UTF-8"?>\n<error code="1">'
                                      b"Too many login attempts. Please try again in 1 minute."
                                      b"</error>\n")
        known, unknown = answers["alice"], answers["nobody-here"]
        assert known.content == unknown.content
        assert dict(known.headers) == dict(unknown.headers)
        # The right password during the lockout is refused too.
        assert login(client, "alice", "wonderland").status_code == 429
        # Other users are not affected.
        assert login(client, "bob", "builder").status_code == 200
    locked_events = [e for e in spy.events if e.event == "login.locked"]
    assert {e.username for e in locked_events} == {"alice", "nobody-here"}
    assert all(e.client_addr == ADDR[0] for e in locked_events)


def test_stale_password_resent_never_locks(quick: dict[str, object]) -> None:
    with make_client(quick) as client:
        for _ in range(10):
            assert login(client, "alice", "last-years-password").status_code == 200
        assert b"<account>" in login(client, "alice", "wonderland").content


def test_real_user_at_home_is_not_locked_out_by_an_attacker(quick: dict[str, object]) -> None:
    """One app behind a trusted proxy; the attacker and the user differ by real address."""
    home = {"X-Forwarded-For": "192.0.2.10"}
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    with make_client(quick, client=("127.0.0.1", 1), trusted=("127.0.0.1",)) as client:
        assert b"<account>" in login(client, "alice", "wonderland", headers=home).content
        for i in range(3):
            login(client, "alice", f"guess{i}", headers=attacker)
        assert login(client, "alice", "wonderland", headers=attacker).status_code == 429
        assert login(client, "alice", "wonderland",
                     headers={"X-Forwarded-For": "203.0.113.99"}).status_code == 429
        # Home logged in before: the attacker's lockout does not reach it.
        assert b"<account>" in login(client, "alice", "wonderland", headers=home).content


def test_address_and_flood_limits_are_429_limited(store_backend: dict[str, object]) -> None:
    spy = AuditSpy()
    guard = {**store_backend, "address_max_failures": 4}
    with make_client(guard, spy) as client:
        for i in range(4):
            login(client, f"user{i}", "Summer2026!")
        limited = login(client, "user99", "Summer2026!")
        assert limited.status_code == 429 and "retry-after" in limited.headers
    assert [e.event for e in spy.events if e.event.startswith("login.l")] == ["login.limited"]


def test_flood_limit_counts_only_logins_that_spend_a_verification(
        store_backend: dict[str, object]) -> None:
    """The restart storm: returning phones answered by the verified-login cache (in Redis on
    the Redis run) are all served past the limit; cold verifications past it get 429."""
    spy = AuditSpy()
    # An hour: Redis windows are aligned buckets, and the test must not straddle two.
    flood = {**store_backend, "tenant_max_verifications": 3, "flood_window": 3600}
    with make_client(flood, spy) as client:
        for user, password in (("alice", "wonderland"), ("bob", "builder")):
            assert b"<account>" in login(client, user, password).content  # 2 verifications
        storm = [login(client, user, password) for _ in range(15)
                 for user, password in (("alice", "wonderland"), ("bob", "builder"))]
        assert all(b"<account>" in answer.content for answer in storm)
        # The third verification is the last within the limit.
        assert b"Wrong username" in login(client, "nobody-here", "guess").content
        unknown = login(client, "nobody-else", "guess")
        wrong = login(client, "alice", "not-her-password")
        for answer in (unknown, wrong):
            assert answer.status_code == 429
            assert 1 <= int(answer.headers["retry-after"]) <= 3600
            assert b"Too many login attempts" in answer.content
        assert unknown.content == wrong.content

        def shape(answer: Any) -> dict[str, str]:
            # Retry-After counts down to the window's end: it may tick between the two.
            return {k: v for k, v in answer.headers.items() if k != "retry-after"}

        assert shape(unknown) == shape(wrong)
        assert abs(int(unknown.headers["retry-after"]) - int(wrong.headers["retry-after"])) <= 1
        # Warm logins are still served while cold ones are refused.
        assert b"<account>" in login(client, "bob", "builder").content
    limited = [e for e in spy.events if e.event == "login.limited"]
    assert [e.username for e in limited] == ["nobody-else", "alice"]
    assert all("flood" in (e.detail or "") for e in limited)


def test_allow_and_deny_lists_per_path(store_backend: dict[str, object]) -> None:
    guard = {**store_backend, "allow": {"/provision": ["10.0.0.0/8"]},
             "deny": {"*": ["198.51.100.0/24"]}}
    with make_client(guard, client=("198.51.100.9", 1)) as denied:
        answer = login(denied, "alice", "wonderland")
        assert answer.status_code == 403
        assert b"not allowed" in answer.content
    with make_client(guard, client=("203.0.113.1", 1)) as outsider:
        assert login(outsider, "alice", "wonderland").status_code == 200
        assert login(outsider, "alice", "wonderland", "/provision").status_code == 403
    with make_client(guard, client=("10.1.2.3", 1)) as inside:
        assert login(inside, "alice", "wonderland", "/provision").status_code == 200


def test_status_of_a_lockout_is_configurable(quick: dict[str, object]) -> None:
    with make_client(quick, errors={"status": {"too_many_attempts": 503}}) as client:
        for i in range(3):
            login(client, "alice", f"guess{i}")
        assert login(client, "alice", "x").status_code == 503


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="info"), stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


@pytest.mark.parametrize("mode", ["local", "closed", "open"])
def test_redis_down_follows_on_redis_error_and_says_so_loudly(
        mode: str, captured_log: io.StringIO) -> None:
    guard = {"redis_url": "redis://127.0.0.1:1/0", "redis_timeout": 0.2,
             "on_redis_error": mode, "lockout_threshold": 2}
    with make_client(guard) as client:
        codes = [login(client, "alice", f"guess{i}").status_code for i in range(3)]
    lines = [json.loads(line) for line in captured_log.getvalue().splitlines() if line]
    alarms = [line for line in lines if line["event"] == "guard.redis_unavailable"]
    assert alarms and alarms[0]["level"] == "error"
    assert alarms[0]["on_redis_error"] == mode
    if mode == "local":
        # Still guarded, by this process's memory.
        assert codes == [200, 200, 429]
    elif mode == "closed":
        assert codes == [503, 503, 503]
    else:
        assert codes == [200, 200, 200]


def test_security_line_per_refused_login_names_address_and_reason(
        quick: dict[str, object], captured_log: io.StringIO) -> None:
    with make_client(quick) as client:
        for i in range(4):
            login(client, "nobody", f"secret-guess-{i}")
        login(client, "alice", "wonderland-not")
    lines = [json.loads(line) for line in captured_log.getvalue().splitlines() if line]
    refused = [line for line in lines if line["event"] == "security.login_refused"]
    assert [(r["reason"], r["username"]) for r in refused] == [
        ("wrong_login", "nobody")] * 3 + [("locked", "nobody"), ("wrong_login", "alice")]
    assert all(r["client_addr"] == ADDR[0] and r["logger"] == "zengine.security"
               for r in refused)
    assert "secret-guess" not in captured_log.getvalue()


def test_zengine_lockouts_list_and_clear_on_redis(prefix: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Any) -> None:
    redis_client()
    guard = {"redis_url": REDIS_URL, "key_prefix": prefix, "lockout_threshold": 3}
    with make_client(guard) as client:
        for i in range(3):
            login(client, "alice", f"guess{i}")
    config = tmp_path / "zengine.toml"
    config.write_text(f'[plugins.guard]\nredis_url = "{REDIS_URL}"\nkey_prefix = "{prefix}"\n')
    assert main(["lockouts", "--config", str(config), "list"]) == 0
    out = capsys.readouterr().out
    assert "alice: 3 distinct failures, locked" in out
    assert f"address  {ADDR[0]}: 3 distinct failures" in out
    assert main(["lockouts", "--config", str(config), "clear", "alice"]) == 0
    assert "cleared" in capsys.readouterr().out
    with make_client(guard) as client:
        assert login(client, "alice", "wonderland").status_code == 200
    assert main(["lockouts", "--config", str(config), "clear", ADDR[0]]) == 0
    assert main(["lockouts", "--config", str(config), "list"]) == 0
    assert "no failures or lockouts" in capsys.readouterr().out


def test_zengine_lockouts_without_redis_explains_why(tmp_path: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "zengine.toml"
    config.write_text("[plugins.guard]\nlockout_threshold = 3\n")
    assert main(["lockouts", "--config", str(config), "list"]) == 1
    assert "redis_url" in capsys.readouterr().err
    # After the action too, as every other plugin command takes it (refused as an
    # unrecognised argument, under the top-level usage, before).
    assert main(["lockouts", "clear", "alice", "--config", str(config)]) == 1
    assert "redis_url" in capsys.readouterr().err


def test_bad_redis_url_is_a_config_error_that_hides_it(tmp_path: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "zengine.toml"
    config.write_text('[plugins.guard]\nredis_url = "http://user:hunter2@example"\n')
    assert main(["check-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "redis_url" in err and "hunter2" not in err


def test_zengine_shared_store_is_redis_when_configured(prefix: str) -> None:
    redis_client()
    guard = {"redis_url": REDIS_URL, "key_prefix": prefix}
    with make_client(guard) as client:
        store = runtime_of(client).store
        assert store is not None
        assert store.kind == "redis"
        store.set("warm:t:k", b"v", ttl=30)
        assert store.get("warm:t:k") == b"v"
        assert store.incr("warm:t:n", ttl=30) == 1
        assert store.incr("warm:t:n", ttl=30) == 2
        assert store.keys("warm:t:") == ["warm:t:k", "warm:t:n"]
        assert store.delete("warm:t:k") == 1
        assert redis_client().get(prefix + "warm:t:n") == b"2"


def test_guard_zengine_readiness_pings_redis(prefix: str) -> None:
    from tests.guard.conftest import REDIS_URL, redis_client

    redis_client()  # a missing Redis fails under CI=true
    with make_client({"redis_url": REDIS_URL, "key_prefix": prefix}) as client:
        up = client.get("/readyz")
    assert up.status_code == 200 and {"backend": "redis", "ready": True} in up.json()["backends"]
    with make_client({"redis_url": "redis://:pw-r3d1s@127.0.0.1:1/0", "redis_timeout": 0.2,
                      "key_prefix": prefix}) as client:
        down = client.get("/readyz")
    assert down.status_code == 503
    assert {"backend": "redis", "ready": False, "reason": "redis unreachable"} in \
        down.json()["backends"]
    assert "pw-r3d1s" not in down.text


def test_redis_connections_are_open_before_the_first_login(prefix: str) -> None:
    """A restart storm's first logins find a connection per provisioning thread already open
    (redis-py would open one per thread on first use, ~0.5 ms of CPU each)."""
    from zengine.offload import PROVISION_THREADS

    redis_client()
    with make_client({"redis_url": REDIS_URL, "key_prefix": prefix}) as client:
        guard = runtime_of(client).state["guard"]
        pool = guard.redis_client.connection_pool
        assert len(pool._available_connections) == PROVISION_THREADS
        assert all(c._sock is not None for c in pool._available_connections)
        assert login(client, "alice", "wonderland").status_code == 200
        assert len(pool._available_connections) == PROVISION_THREADS  # none more opened


def test_an_unreachable_redis_does_not_hold_up_startup_once_per_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first failed connection ends the opening (counted: a refused port fails at once,
    so the time alone could not tell one attempt from forty)."""
    import redis.connection

    attempts: list[object] = []
    real = redis.connection.AbstractConnection.connect

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(self)
        return real(self, *args, **kwargs)  # type: ignore[no-untyped-call]  # redis-py's

    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", connect)
    with make_client({"redis_url": "redis://127.0.0.1:1/0", "redis_timeout": 0.5}) as client:
        at_startup = len(attempts)
        guard = runtime_of(client).state["guard"]
        assert guard.open_connections(40) == 0
        assert len(attempts) - at_startup == 1
    assert 1 <= at_startup <= 3  # the digest key's read and the opening's first attempt


def test_only_the_global_runtimes_guard_opens_connections_at_startup(
        tmp_path: Path, prefix: str) -> None:
    """Review: each tenant's runtime has a guard and a pool of its own; 40 connections each
    at startup would add up to Redis's client limit with many tenants and workers."""
    from tests.tenants_kit import config
    from zengine.offload import PROVISION_THREADS
    from zengine.runtime import build_runtime

    redis_client()
    settings = load_settings(config(tmp_path), environ={
        "ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
        "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix,
        "ZENGINE_LOGIN_CACHE__SECRET": "s" * 40})
    runtime = build_runtime(settings)
    runtime.start()
    try:
        def idle(rt: Any) -> int:
            pool = rt.state["guard"].redis_client.connection_pool
            return len(pool._available_connections)

        assert runtime.tenants and idle(runtime) == PROVISION_THREADS
        assert all(idle(tenant) <= 2 for tenant in runtime.tenants.values())
    finally:
        runtime.stop()
