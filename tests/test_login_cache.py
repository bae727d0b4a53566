"""The verified-login cache: hits skip the slow check, and nothing else changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr

import zengine_static
from zengine.errors import ConfigError
from zengine.logincache import LocalEntries, LoginCache, LoginCacheSettings, LoginKey, load_key
from zengine.models import Credentials, Identity, ProvisionRequest, Rejected
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


def static_runtime(tmp_path: Path, users: str, **cache: Any) -> Runtime:
    path = tmp_path / "users.toml"
    path.write_text(users)
    settings = settings_from_mapping({
        "plugins": {"static": {"users_file": str(path)}},
        "login_cache": {"secret": SECRET, **cache},
    }, environ={})
    runtime = build_runtime(settings, load_entrypoints=False,
                            plugins=[("static", zengine_static)])
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
