"""Secrets at rest: a database file or dump alone reveals no SIP or provisioning password."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import zengine_sql
from tests.conftest import service_missing
from tests.sql.conftest import KEY_1, KEY_2, sql_config, sqlite_files
from zengine.errors import AccountDataError
from zengine.models import Identity
from zengine.runtime import Runtime
from zengine_sql import admin, specs
from zengine_sql.schema import ACCOUNTS
from zengine_sql.state import SqlState

PROVISIONING_PW = "Prov-Secret-7f3a9c"
SIP_PW = "Sip-Secret-b81e44"
CANARY = "Canary-Plain-5d2e11"


def _dump(kind: str, url: URL) -> bytes:
    """What an attacker with a backup would have: the file, or the server's own dump tool."""
    if kind == "sqlite":
        return b"".join(path.read_bytes() for path in sqlite_files(url))
    if kind == "postgres":
        tool = shutil.which("pg_dump")
        if tool is None:
            service_missing("pg_dump not installed")
        args = [str(tool), "--host", str(url.host), "--port", str(url.port or 5432),
                "--username", str(url.username), "--no-password", str(url.database)]
    else:
        tool = shutil.which("mariadb-dump") or shutil.which("mysqldump")
        if tool is None:
            service_missing("mariadb-dump/mysqldump not installed")
        args = [str(tool), "--host", str(url.host), "--port", str(url.port or 3306),
                "--user", str(url.username), "--skip-extended-insert", str(url.database)]
    env = {"PATH": "/usr/bin:/bin"}
    if url.password:
        env["PGPASSWORD" if kind == "postgres" else "MYSQL_PWD"] = str(url.password)
    return subprocess.run(args, check=True, capture_output=True, env=env, timeout=60).stdout


@pytest.fixture
def rt(own_db: URL, runtime_for: Callable[..., Runtime]) -> Runtime:
    return runtime_for(sql_config(own_db))


def _state(runtime: Runtime) -> SqlState:
    state = zengine_sql.get_state(runtime)
    assert state is not None
    return state


def _add(runtime: Runtime, username: str, *, password: str | None = None) -> None:
    admin.add_user(_state(runtime), specs.UserSpec(
        username=username, password=password, display_name=CANARY,
        accounts=[specs.AccountSpec(ident="a1", sip_username=username, sip_password=SIP_PW,
                                    domain="sip.example.net")]))


def test_dump_reveals_no_password(rt: Runtime, db_kind: str, own_db: URL) -> None:
    _add(rt, "alice", password=PROVISIONING_PW)
    # The stored data is usable: the backend gives the SIP password back...
    accounts = rt.hooks.load_accounts(Identity("alice", backend="sql"), rt)
    assert accounts[0].sip_password.get_secret_value() == SIP_PW
    rt.stop()  # SQLite: flush and close the file before reading it
    dump = _dump(db_kind, own_db)
    # ...the dump holds the user's plain data (so the search below can find things)...
    assert CANARY.encode() in dump
    # ...but neither password, in any encoding a database might use.
    for secret in (PROVISIONING_PW, SIP_PW):
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in dump, (secret, encoding)


def test_rotate_key(own_db: URL, runtime_for: Callable[..., Runtime]) -> None:
    old = runtime_for(sql_config(own_db))
    for name in ("u1", "u2", "u3"):
        _add(old, name)
    both = runtime_for(sql_config(own_db, encryption_keys={"k1": KEY_1, "k2": KEY_2},
                                  encryption_key_id="k2"))
    assert admin.rotate_key(_state(both)) == 3
    assert admin.rotate_key(_state(both)) == 0
    with _state(both).engine.connect() as conn:
        assert set(conn.execute(sa.select(ACCOUNTS.c.key_id)).scalars()) == {"k2"}
    # The old key can go: everything decrypts with k2 alone.
    new = runtime_for(sql_config(own_db, encryption_keys={"k2": KEY_2}))
    for name in ("u1", "u2", "u3"):
        account = new.hooks.load_accounts(Identity(name, backend="sql"), new)[0]
        assert account.sip_password.get_secret_value() == SIP_PW


def test_wrong_or_tampered_ciphertext_fails_loudly(
        own_db: URL, runtime_for: Callable[..., Runtime]) -> None:
    rt = runtime_for(sql_config(own_db))
    _add(rt, "mallory")
    wrong = runtime_for(sql_config(own_db, encryption_keys={"k1": KEY_2}))
    with pytest.raises(AccountDataError, match="does not decrypt"):
        wrong.hooks.load_accounts(Identity("mallory", backend="sql"), wrong)
    state = _state(rt)
    with state.engine.begin() as conn:
        stored = conn.execute(sa.select(ACCOUNTS.c.sip_password)).scalar_one()
        flipped = stored[:-3] + ("A" if stored[-3] != "A" else "B") + stored[-2:]
        conn.execute(sa.update(ACCOUNTS).values(sip_password=flipped))
    with pytest.raises(AccountDataError, match="does not decrypt"):
        rt.hooks.load_accounts(Identity("mallory", backend="sql"), rt)
    # A value moved under another key id fails too: the key id is authenticated data.
    with state.engine.begin() as conn:
        conn.execute(sa.update(ACCOUNTS).values(sip_password="k2" + stored[2:]))
    both = runtime_for(sql_config(own_db, encryption_keys={"k1": KEY_1, "k2": KEY_1},
                                  encryption_key_id="k1"))
    with pytest.raises(AccountDataError, match="does not decrypt"):
        both.hooks.load_accounts(Identity("mallory", backend="sql"), both)


def test_secrets_not_in_reprs(rt: Runtime) -> None:
    state = _state(rt)
    assert KEY_1 not in repr(state) and KEY_1 not in repr(state.box) and KEY_1 not in repr(
        state.config)
    spec = specs.AccountSpec(ident="x", sip_username="x", sip_password=SIP_PW, domain="d")
    assert SIP_PW not in repr(spec)
    assert SIP_PW not in repr(specs.UserSpec("u", password=SIP_PW, accounts=[spec]))
