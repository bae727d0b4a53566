"""The verified-login cache: hits skip the slow check, and nothing else changes."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from argon2 import PasswordHasher
from pydantic import SecretStr

import zengine_static
from tests.redis_store import REDIS_URL, RedisTestStore, StorePlugin, new_prefix, require_redis
from zengine import hookimpl, logincache
from zengine.errors import ConfigError, TooManyAttempts
from zengine.logincache import LocalEntries, LoginCache, LoginCacheSettings, LoginKey, load_key
from zengine.models import (
    AuthResult,
    Credentials,
    Identity,
    LoginAttempt,
    ProvisionRequest,
    Rejected,
)
from zengine.pipeline import check_login
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine_static.users import load_users

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
REQUEST = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)
SECRET = "k" * 40


def users_toml(password: str, *, enabled: bool = True) -> str:
    return f"""
[users.alice]
password_hash = "{CHEAP.hash(password)}"
tenant = "wonderland"
enabled = {"true" if enabled else "false"}

[[users.alice.accounts]]
ident = "a"
sip_username = "1001"
sip_password = "sip-secret"
domain = "sip.example.com"
"""


class Counted:
    """Counts the real argon2 verifications a runtime does."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = runtime.passwords.verify

        def verify(stored: str | None, password: str) -> bool:
            self.calls += 1
            return real(stored, password)

        monkeypatch.setattr(runtime.passwords, "verify", verify)


def static_runtime(tmp_path: Path, users: str, extra: Sequence[tuple[str, object]] = (),
                   **cache: Any) -> Runtime:
    path = tmp_path / "users.toml"
    path.write_text(users)
    settings = settings_from_mapping({
        "plugins": {"static": {"users_file": str(path)}},
        "login_cache": {"secret": SECRET, **cache},
    }, environ={})
    runtime = build_runtime(settings, load_entrypoints=False,
                            plugins=[("static", zengine_static), *extra])
    runtime.start()
    return runtime


@pytest.fixture
def static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Runtime, Counted]]:
    runtime = static_runtime(tmp_path, users_toml("wonderland"))
    yield runtime, Counted(runtime, monkeypatch)
    runtime.stop()


def login(runtime: Runtime, password: str) -> Identity | Rejected | None:
    result = runtime.hooks.authenticate(Credentials("alice", SecretStr(password)), REQUEST,
                                        runtime, ("static",))
    assert not isinstance(result, Identity | Rejected) or result.backend == "static"
    return result  # type: ignore[return-value]


def test_hit_skips_the_slow_check(static: tuple[Runtime, Counted]) -> None:
    runtime, counted = static
    assert isinstance(login(runtime, "wonderland"), Identity)
    assert counted.calls == 1
    for _ in range(3):
        assert isinstance(login(runtime, "wonderland"), Identity)
    assert counted.calls == 1


def test_other_password_misses_and_is_refused(static: tuple[Runtime, Counted]) -> None:
    runtime, counted = static
    assert isinstance(login(runtime, "wonderland"), Identity)
    assert isinstance(login(runtime, "wonderland!"), Rejected)
    assert counted.calls == 2


def test_wrong_password_after_a_hit_drops_the_entry(static: tuple[Runtime, Counted]) -> None:
    runtime, counted = static
    login(runtime, "wonderland")
    login(runtime, "wonderland")
    assert counted.calls == 1
    assert isinstance(login(runtime, "guess"), Rejected)
    # The next correct login pays the full check again, then hits.
    assert isinstance(login(runtime, "wonderland"), Identity)
    assert isinstance(login(runtime, "wonderland"), Identity)
    assert counted.calls == 3


def test_reloaded_users_file_with_a_new_password_never_hits(
        static: tuple[Runtime, Counted], tmp_path: Path) -> None:
    runtime, counted = static
    login(runtime, "wonderland")
    # What a reload does: the plugin's state is the file read again (new hash, new salt).
    (tmp_path / "new.toml").write_text(users_toml("looking-glass"))
    runtime.state["static"] = load_users(tmp_path / "new.toml", runtime.settings.profiles)
    assert isinstance(login(runtime, "wonderland"), Rejected)
    assert isinstance(login(runtime, "looking-glass"), Identity)
    assert counted.calls == 3


def test_hit_still_honours_a_disabled_account(
        static: tuple[Runtime, Counted], tmp_path: Path) -> None:
    runtime, counted = static
    login(runtime, "wonderland")
    users = load_users(tmp_path / "users.toml", runtime.settings.profiles)
    # Same hash, now disabled: the cache entry still matches, the account check refuses.
    runtime.state["static"] = {"alice": users["alice"].model_copy(update={"enabled": False})}
    result = login(runtime, "wonderland")
    assert isinstance(result, Rejected) and result.reason == "user disabled"
    assert counted.calls == 1


def test_opt_out_always_pays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = static_runtime(tmp_path, users_toml("wonderland"), enabled=False)
    try:
        counted = Counted(runtime, monkeypatch)
        for _ in range(3):
            assert isinstance(login(runtime, "wonderland"), Identity)
        assert counted.calls == 3
    finally:
        runtime.stop()


def test_entries_expire_after_their_backend_ttl() -> None:
    now = [1000.0]
    settings = LoginCacheSettings(ttl=60, backend_ttl={"sql": 10})
    cache = LoginCache(settings, b"k" * 32, LocalEntries(16, clock=lambda: now[0]))
    assert cache.ttl_for("ldap") == 300  # the short default for bind-checked backends
    static_key, sql_key = LoginKey("static", None, "a", "h"), LoginKey("sql", None, "b", "h")
    cache.remember(static_key, "pw")
    cache.remember(sql_key, "pw")
    now[0] += 11
    assert cache.check(static_key, "pw") and not cache.check(sql_key, "pw")
    now[0] += 50
    assert not cache.check(static_key, "pw")


def test_lru_is_bounded_and_digests_hold_no_secret() -> None:
    entries = LocalEntries(16)
    cache = LoginCache(LoginCacheSettings(max_entries=16), b"k" * 32, entries)
    for number in range(40):
        cache.remember(LoginKey("static", "t", f"user{number}", "hash"), "hunter2")
    assert len(entries) == 16
    assert not cache.check(LoginKey("static", "t", "user0", "hash"), "hunter2")
    assert cache.check(LoginKey("static", "t", "user39", "hash"), "hunter2")
    dump = repr(entries._items)
    assert "hunter2" not in dump and "user39" not in dump


def test_digest_depends_on_every_part_and_the_key() -> None:
    one = LoginCache(LoginCacheSettings(), b"a" * 32, LocalEntries(64))
    key = LoginKey("static", "t", "alice", "hash")
    one.remember(key, "pw")
    for other in (LoginKey("sql", "t", "alice", "hash"), LoginKey("static", "u", "alice", "hash"),
                  LoginKey("static", "t", "alice", "hash2")):
        assert not one.check(other, "pw")
    other_key = LoginCache(LoginCacheSettings(), b"b" * 32, one.entries)
    assert not other_key.check(key, "pw")
    assert not one.check(key, "") and one.check(key, "pw")


def test_digests_are_exactly_a_fresh_hmac_of_the_length_prefixed_parts() -> None:
    # The key is set up once and copied per digest: every digest, the first and the
    # hundredth, must still be the one-shot HMAC-SHA256 of the same message.
    import hashlib
    import hmac

    key = b"s" * 40
    cache = LoginCache(LoginCacheSettings(), key, LocalEntries(16))
    cases: list[tuple[str | None, ...]] = [
        ("fast-v1", "alice", "wonderland"), ("user", "bob"), ("tenant-user", "acme", "bob"),
        ("login-v1", "static", None, "alice", "$argon2id$...", "pw"), (), ("é\ud800", ""),
    ]
    for _ in range(3):
        for parts in cases:
            message = b"".join(logincache._field(part) for part in parts)
            assert cache.keyed(*parts) == hmac.new(key, message, hashlib.sha256).digest()
    assert cache.slot("bob") == "login:" + hmac.new(
        key, logincache._field("user") + logincache._field("bob"),
        hashlib.sha256).hexdigest()[:32]


def test_secret_from_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("s" * 43 + "\n")
    assert load_key(LoginCacheSettings(secret_file=path), Path) == b"s" * 43
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_key(LoginCacheSettings(secret=SecretStr("short")), Path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_key(LoginCacheSettings(secret_file=tmp_path / "missing"), Path)
    with pytest.raises(ConfigError, match="not both"):
        load_key(LoginCacheSettings(secret=SecretStr("s" * 40), secret_file=path), Path)


# -- the login guard, and the cache in the shared store (real Redis) ----------------------


class Locked:
    """A guard that refuses every login while ``locked`` is set."""

    locked = False

    @hookimpl
    def zengine_login_check(self, attempt: LoginAttempt) -> None:
        if self.locked:
            raise TooManyAttempts(f"{attempt.username} locked")


def guarded_login(runtime: Runtime, password: str) -> AuthResult | None:
    credentials = Credentials("alice", SecretStr(password))
    attempt = LoginAttempt(username="alice", secret=credentials.password,
                           client_addr="127.0.0.1")
    return check_login(attempt, credentials, REQUEST, runtime)


def test_guard_refuses_a_cached_password_and_drops_the_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guard = Locked()
    runtime = static_runtime(tmp_path, users_toml("wonderland"), extra=[("guard", guard)])
    try:
        counted = Counted(runtime, monkeypatch)
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)
        assert counted.calls == 1
        guard.locked = True
        with pytest.raises(TooManyAttempts):
            guarded_login(runtime, "wonderland")
        guard.locked = False
        # After the lockout the password is checked in full again.
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)
        assert counted.calls == 2
    finally:
        runtime.stop()


SECOND_PROCESS = """
import sys
from pydantic import SecretStr
import zengine_static
from tests.redis_store import StorePlugin
from zengine.models import Credentials, Identity, ProvisionRequest
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping

users, prefix, secret = sys.argv[1:4]
settings = settings_from_mapping({"plugins": {"static": {"users_file": users}},
                                  "login_cache": {"secret": secret}}, environ={})
runtime = build_runtime(settings, load_entrypoints=False,
                        plugins=[("static", zengine_static),
                                 ("teststore", StorePlugin("redis://127.0.0.1:6379/0", prefix))])
runtime.start()
request = ProvisionRequest(path="/", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)
result = runtime.hooks.authenticate(Credentials("alice", SecretStr("wonderland")), request,
                                    runtime, ("static",))
runtime.stop()
print("accepted" if isinstance(result, Identity) else "refused")
"""


def test_redis_cache_is_shared_by_two_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_redis()
    prefix = new_prefix()
    plugin = StorePlugin(REDIS_URL, prefix)
    runtime = static_runtime(tmp_path, users_toml("wonderland"), extra=[("teststore", plugin)])
    try:
        assert runtime.logins.entries.kind == "redis"
        counted = Counted(runtime, monkeypatch)
        # Another process verifies alice's password and leaves the digest in Redis ...
        done = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS, str(tmp_path / "users.toml"), prefix, SECRET],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
        assert done.stdout.strip() == "accepted", done.stderr
        # ... so this one accepts it without an argon2 verification of its own.
        assert isinstance(login(runtime, "wonderland"), Identity)
        assert counted.calls == 0
        stored = RedisTestStore(REDIS_URL, prefix)
        keys = stored.keys("login:")
        assert len(keys) == 1 and "alice" not in keys[0]
        assert b"wonderland" not in (stored.get(keys[0]) or b"wonderland")
        # A wrong password here drops the shared entry for every process.
        assert isinstance(login(runtime, "guess"), Rejected)
        assert stored.keys("login:") == []
    finally:
        runtime.stop()
        RedisTestStore(REDIS_URL, prefix).wipe()


def test_redis_down_means_the_full_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"  # nothing listens here
    runtime = static_runtime(tmp_path, users_toml("wonderland"),
                             extra=[("teststore", StorePlugin(dead, new_prefix()))])
    try:
        counted = Counted(runtime, monkeypatch)
        with structlog.testing.capture_logs() as logs:
            # A logger cached by an earlier test's configure_logging would bypass the capture.
            monkeypatch.setattr(logincache, "log", structlog.get_logger("zengine.logincache"))
            for _ in range(2):
                assert isinstance(login(runtime, "wonderland"), Identity)
            assert isinstance(login(runtime, "guess"), Rejected)
        assert counted.calls == 3  # every login paid in full; none failed
        events = [entry for entry in logs if entry["event"] == "login_cache.store_unavailable"]
        assert events and all(entry["store"] == "redis" for entry in events)
        assert "wonderland" not in repr(logs)
    finally:
        runtime.stop()


def test_an_offered_entry_serves_one_lookup_inside_its_scope_only() -> None:
    cache = LoginCache(LoginCacheSettings(secret=SecretStr(SECRET)), SECRET.encode(),
                       LocalEntries(16))
    key = LoginKey("static", None, "alice", "hash")
    cache.remember(key, "wonderland")
    slot = cache.slot("alice")
    logincache.offer(slot, None)  # outside a scope: ignored
    assert cache.check(key, "wonderland")
    with logincache.prefetching():
        logincache.offer(slot, None)  # "no entry", read with the guard's check
        assert not cache.check(key, "wonderland")
        assert cache.check(key, "wonderland")  # used once; then the store answers
        logincache.offer(slot, None)
        cache.remember(key, "wonderland")  # a write in between withdraws what was read
        assert cache.check(key, "wonderland")
    with logincache.prefetching():
        logincache.offer(slot, None)
    assert cache.check(key, "wonderland")  # gone with its scope
    with pytest.raises(RuntimeError), logincache.prefetching():
        logincache.offer(slot, None)
        raise RuntimeError("the check failed")
    assert cache.check(key, "wonderland")  # gone with a scope that raised too


def guard_runtime(tmp_path: Path, prefix: str, **login_cache: object) -> Runtime:
    import zengine_guard

    path = tmp_path / "users.toml"
    path.write_text(users_toml("wonderland"))
    settings = settings_from_mapping({
        "plugins": {"static": {"users_file": str(path)},
                    "guard": {"redis_url": REDIS_URL, "key_prefix": prefix,
                              "lockout_threshold": 3}},
        "login_cache": {"secret": SECRET, **login_cache},
    }, environ={})
    runtime = build_runtime(settings, load_entrypoints=False,
                            plugins=[("static", zengine_static), ("guard", zengine_guard)])
    runtime.start()
    return runtime


def test_guard_on_redis_reads_the_entry_with_its_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A returning login: the guard's check brings the cache entry along (no GET of its
    own), and everything the cache decides stays as it was; a lockout set through another
    runtime on the same Redis (another worker) refuses the cached password at once."""
    require_redis()
    prefix = new_prefix()
    runtime = guard_runtime(tmp_path, prefix)
    other = guard_runtime(tmp_path, prefix)
    try:
        assert runtime.logins.entries.kind == "redis"
        counted = Counted(runtime, monkeypatch)
        gets: list[str] = []
        real_get = runtime.logins.entries.get

        def get(key: str) -> bytes | None:
            gets.append(key)
            return real_get(key)

        monkeypatch.setattr(runtime.logins.entries, "get", get)
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)
        assert counted.calls == 1
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)
        assert counted.calls == 1 and gets == []  # a hit, read by the guard's script
        assert isinstance(guarded_login(runtime, "guess"), Rejected)
        assert counted.calls == 2
        assert isinstance(guarded_login(runtime, "wonderland"), Identity)
        assert counted.calls == 3  # the failure dropped the entry for everybody
        for n in range(3):  # another worker sees enough distinct failures to lock alice
            other_attempt = LoginAttempt(username="alice", secret=SecretStr(f"wrong-{n}"),
                                         client_addr="192.0.2.7")
            with contextlib.suppress(TooManyAttempts):
                check_login(other_attempt, Credentials("alice", other_attempt.secret),
                            REQUEST, other)
        attempt = LoginAttempt(username="alice", secret=SecretStr("wonderland"),
                               client_addr="198.51.100.9")  # not a familiar address
        with pytest.raises(TooManyAttempts):
            check_login(attempt, Credentials("alice", attempt.secret), REQUEST, runtime)
        assert gets == []
    finally:
        runtime.stop()
        other.stop()
        RedisTestStore(REDIS_URL, prefix).wipe()


def test_forget_withdraws_an_entry_offered_before_it() -> None:
    """A lockout or failed login forgets the user after the guard's check read the entry:
    the read must not serve the next lookup (removing the withdrawal from forget passed
    every test before)."""
    cache = LoginCache(LoginCacheSettings(secret=SecretStr(SECRET)), SECRET.encode(),
                       LocalEntries(16))
    key = LoginKey("static", None, "alice", "hash")
    cache.remember(key, "wonderland")
    slot = cache.slot("alice")
    read = cache.entries.get(slot)
    assert isinstance(read, bytes)
    with logincache.prefetching():
        logincache.offer(slot, read)  # read with the guard's check, still valid
        cache.forget("alice")
        assert not cache.check(key, "wonderland")
