"""The API key store: create, check, expire, revoke, CIDR; only a digest is stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import zengine_admin.keys as keys_module
from tests.admin.conftest import runtime_from, write_config
from zengine.cli import main
from zengine.runtime import Runtime
from zengine_admin.keys import KeyStore, key_store


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = runtime_from(write_config(tmp_path))
    yield rt
    rt.stop()


@pytest.fixture
def store(runtime: Runtime) -> KeyStore:
    return key_store(runtime)


def test_created_key_authenticates_and_only_its_digest_is_stored(
        store: KeyStore, tmp_path: Path) -> None:
    created = store.create("billing", "write", tenant="acme")
    assert created.key.startswith(f"zk_{created.info.id}_")
    assert created.key not in repr(created)
    checked = store.authenticate(created.key, "192.0.2.1")
    assert checked.refusal is None and checked.key is not None
    assert (checked.key.name, checked.key.scope, checked.key.tenant) == ("billing", "write",
                                                                          "acme")
    # [plugins.sql] url is set: store "auto" keeps keys in the SQL backend's database.
    assert store.backend == "sql"
    path = Path(str(store.engine.url.database))
    assert path == tmp_path / "own.db"
    secret = created.key[16:]
    assert secret.encode() not in path.read_bytes()
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT key_hash FROM zengine_api_keys").fetchone()
    assert stored == store.digest(created.key) and len(stored) == 64


@pytest.mark.parametrize("mangle, reason", [
    (lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), "wrong"),
    (lambda k: "zk_ffffffffffff_" + k[16:], "unknown"),
    (lambda k: "not a key", "malformed"),
    (lambda k: k + "x" * 200, "malformed"),
    (lambda k: "", "malformed"),
])
def test_bad_keys_are_refused_with_their_reason(store: KeyStore, mangle: object,
                                                reason: str) -> None:
    key = store.create("k", "read").key
    checked = store.authenticate(mangle(key), "192.0.2.1")  # type: ignore[operator]
    assert checked.refusal == reason


def test_expired_and_revoked_keys_are_refused(store: KeyStore,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    soon = store.create("soon", "read", expires=timedelta(minutes=5)).key
    assert store.authenticate(soon, "192.0.2.1").refusal is None
    later = keys_module.utcnow() + timedelta(minutes=6)
    monkeypatch.setattr(keys_module, "utcnow", lambda: later)
    assert store.authenticate(soon, "192.0.2.1").refusal == "expired"
    monkeypatch.undo()
    forever = store.create("forever", "read").key
    assert store.revoke("forever") is not None
    assert store.authenticate(forever, "192.0.2.1").refusal == "revoked"
    assert store.revoke("forever") is None


def test_cidr_allow_list(store: KeyStore) -> None:
    key = store.create("net", "read", allow=["10.0.0.0/8", "2001:db8::/32"]).key
    assert store.authenticate(key, "10.1.2.3").refusal is None
    assert store.authenticate(key, "2001:db8::1").refusal is None
    assert store.authenticate(key, "192.0.2.1").refusal == "address"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"name": "bad name"}, "--name"),
    ({"scope": "admin"}, "--scope"),
    ({"tenant": "a b"}, "--tenant"),
    ({"allow": ["10.0.0.300"]}, "--allow '10.0.0.300'"),
    ({"expires": timedelta(seconds=1)}, "--expires"),
])
def test_create_refuses_bad_arguments_naming_them(store: KeyStore, kwargs: dict[str, object],
                                                  fragment: str) -> None:
    args: dict[str, object] = {"name": "ok", "scope": "read", **kwargs}
    name, scope = args.pop("name"), args.pop("scope")
    with pytest.raises(ValueError, match=fragment):
        store.create(name, scope, **args)  # type: ignore[arg-type]


def test_names_are_unique_even_after_revocation(store: KeyStore) -> None:
    store.create("once", "read")
    store.revoke("once")
    with pytest.raises(ValueError, match="exists"):
        store.create("once", "read")


def test_cli_prints_the_key_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    assert main(["apikeys", "create", "-c", config, "--name", "ops", "--scope", "tokens",
                 "--expires", "90d", "--allow", "127.0.0.1,10.0.0.0/8"]) == 0
    out = capsys.readouterr().out
    key = out.split()[1]
    assert key.startswith("zk_")
    assert main(["apikeys", "list", "-c", config]) == 0
    listing = capsys.readouterr().out
    assert "ops" in listing and "tokens" in listing and key not in listing
    assert main(["apikeys", "list", "-c", config, "--json"]) == 0
    assert key not in capsys.readouterr().out
    assert main(["apikeys", "revoke", "-c", config, "ops"]) == 0
    assert main(["apikeys", "revoke", "-c", config, "ops"]) == 1
    assert "no live API key" in capsys.readouterr().err
    assert main(["apikeys", "create", "-c", config, "--name", "x", "--scope", "read",
                 "--allow", "nonsense"]) == 1
    assert "--allow 'nonsense'" in capsys.readouterr().err
