"""``zengine users disable`` (and ``set-password``), run as an operator runs them, drop the
user's verified-login entry from the cache the servers share (Redis): the command's own runtime
must use the same store and the same secret, or its forget misses the servers' slot."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

import zengine_guard
import zengine_sql
from tests.redis_store import REDIS_URL, RedisTestStore, new_prefix, require_redis
from tests.sql.conftest import KEY_1, PASSWORD, url_text
from tests.test_login_cache import Counted
from zengine.cli import main
from zengine.models import Credentials, Identity, ProvisionRequest, Rejected
from zengine.runtime import Runtime, build_runtime
from zengine.settings import load_settings
from zengine_sql import admin, specs

REQUEST = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)


@pytest.fixture
def shared(own_db: URL, tmp_path: Path, password_hash: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Runtime, str]]:
    """A config with the SQL backend, the guard's Redis (a prefix of its own) and a login cache
    secret; a server runtime built from it, with carol in the database."""
    require_redis()
    for name in ("ZENGINE_CONFIG", "ZENGINE_PLUGINS__SQL__URL"):
        monkeypatch.delenv(name, raising=False)
    prefix = new_prefix()
    config = tmp_path / "zengine.toml"
    config.write_text("\n".join([
        "[login_cache]", f"secret = {json.dumps('c' * 40)}",
        "[plugins.sql]", f"url = {json.dumps(url_text(own_db))}",
        "[plugins.sql.encryption_keys]", f"k1 = {json.dumps(KEY_1)}",
        "[plugins.guard]", f"redis_url = {json.dumps(REDIS_URL)}",
        f"key_prefix = {json.dumps(prefix)}",
    ]) + "\n", encoding="utf-8")
    runtime = build_runtime(load_settings(config, environ={}), load_entrypoints=False,
                            plugins=[("sql", zengine_sql), ("guard", zengine_guard)])
    runtime.start()
    state = zengine_sql.get_state(runtime)
    assert state is not None
    admin.add_user(state, specs.UserSpec(username="carol", password_hash=password_hash))
    try:
        yield config, runtime, prefix
    finally:
        runtime.stop()
        RedisTestStore(REDIS_URL, prefix).wipe()


def command(config: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Callable[..., int]:
    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, "--config", str(config)])
        capsys.readouterr()
        return code
    return run


def login(runtime: Runtime, password: str) -> object:
    return runtime.hooks.authenticate(Credentials("carol", SecretStr(password)), REQUEST,
                                      runtime, ("sql",))


def test_users_disable_drops_the_shared_entry(
        shared: tuple[Path, Runtime, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config, runtime, prefix = shared
    assert runtime.logins.entries.kind == "redis"
    counted = Counted(runtime, monkeypatch)
    run = command(config, monkeypatch, capsys)
    stored = RedisTestStore(REDIS_URL, prefix)
    assert isinstance(login(runtime, PASSWORD), Identity)
    slot = runtime.logins.slot("carol")
    assert stored.get(slot) is not None
    assert run("users", "disable", "carol") == 0
    assert stored.get(slot) is None
    result = login(runtime, PASSWORD)
    assert isinstance(result, Rejected) and result.reason == "user disabled"
    assert run("users", "enable", "carol") == 0
    # The entry went with the disable: the first login after it pays in full.
    assert isinstance(login(runtime, PASSWORD), Identity)
    assert counted.calls == 3


def test_users_set_password_drops_the_shared_entry(
        shared: tuple[Path, Runtime, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config, runtime, prefix = shared
    run = command(config, monkeypatch, capsys)
    stored = RedisTestStore(REDIS_URL, prefix)
    assert isinstance(login(runtime, PASSWORD), Identity)
    slot = runtime.logins.slot("carol")
    assert stored.get(slot) is not None
    assert run("users", "set-password", "carol", stdin="a changed password\n") == 0
    assert stored.get(slot) is None
    assert isinstance(login(runtime, PASSWORD), Rejected)
    assert isinstance(login(runtime, "a changed password"), Identity)
