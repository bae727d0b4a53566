"""The own schema's behaviour, identical on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

import zengine_sql
from tests.sql.conftest import PASSWORD, make_runtime, sql_config
from zengine.app import create_app
from zengine.errors import AccountDataError, ConfigError
from zengine.models import Abstain, Credentials, Identity, ProvisionRequest, Rejected
from zengine.passwords import needs_rehash
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine_sql import admin, specs
from zengine_sql.schema import USERS

#: Log in by LDAP, accounts from SQL ([auth] account_sources).
LDAP_TO_SQL = {"ldap": ("sql",)}

REQUEST = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)


def login(runtime: Runtime, username: str, password: str) -> Identity | Rejected | Abstain | None:
    return runtime.hooks.authenticate(Credentials(username, SecretStr(password)), REQUEST,
                                      runtime, ("sql",))


def add(runtime: Runtime, username: str, password_hash: str | None, *, accounts: int = 1,
        **fields: Any) -> None:
    state = zengine_sql.get_state(runtime)
    assert state is not None
    spec = specs.UserSpec(username=username, password_hash=password_hash, **fields)
    for number in range(accounts):
        spec.accounts.append(specs.AccountSpec(
            ident=f"{username}-{number}", sip_username=f"{username}{number}",
            sip_password=f"sip-{username}-{number}", domain="sip.example.net",
            optional={"caller_id": f"{username} {number}", "transport": "TLS"},
            overrides={"stun": {"use_stun": "custom"}} if number == 0 else {}))
    admin.add_user(state, spec)


@pytest.fixture
def rt(own_db: URL, runtime_for: Callable[..., Runtime]) -> Runtime:
    return runtime_for(sql_config(own_db))


def test_unconfigured_plugin_is_inert() -> None:
    runtime = make_runtime({})
    try:
        assert zengine_sql.get_state(runtime) is None
        assert login(runtime, "alice", PASSWORD) is None
        assert runtime.hooks.load_accounts(Identity("alice", backend="sql"), runtime) == []
    finally:
        runtime.stop()


def test_unknown_setting_names_the_key() -> None:
    settings = settings_from_mapping({"plugins": {"sql": {"urll": "sqlite://"}}}, environ={})
    with pytest.raises(ConfigError, match="urll"):
        build_runtime(settings, load_entrypoints=False, plugins=[("sql", zengine_sql)])


def test_login_accepts_and_describes_the_user(rt: Runtime, password_hash: str) -> None:
    add(rt, "alice", password_hash, profile="basic", display_name="Alice A.", tenant="isp1",
        overrides={"SIP_transport_type": "TCP"})
    identity = login(rt, "alice", PASSWORD)
    assert isinstance(identity, Identity)
    assert (identity.username, identity.backend, identity.profile, identity.tenant) == (
        "alice", "sql", "basic", "isp1")
    assert identity.display_name == "Alice A."
    assert dict(identity.overrides) == {"SIP_transport_type": "TCP"}


def test_wrong_password_rejects_unknown_abstains(rt: Runtime, password_hash: str) -> None:
    add(rt, "bob", password_hash)
    assert isinstance(login(rt, "bob", "not the password"), Rejected)
    assert login(rt, "nobody", PASSWORD) is None
    # Logins are byte-exact on every database, MariaDB's default collation notwithstanding.
    assert login(rt, "BOB", PASSWORD) is None


def test_disabled_user_is_rejected_and_gets_no_accounts(rt: Runtime, password_hash: str) -> None:
    add(rt, "carol", password_hash, enabled=False)
    result = login(rt, "carol", PASSWORD)
    assert isinstance(result, Rejected)
    assert result.reason == "user disabled"
    assert rt.hooks.load_accounts(Identity("carol", backend="ldap"), rt, LDAP_TO_SQL) == []


def test_user_without_password_abstains_but_has_accounts(rt: Runtime) -> None:
    # "LDAP login + SQL accounts": SQL does not log the user in, yet holds their accounts.
    add(rt, "dave", None, accounts=2)
    assert login(rt, "dave", PASSWORD) is None
    accounts = rt.hooks.load_accounts(Identity("dave", backend="ldap"), rt, LDAP_TO_SQL)
    assert [a.ident for a in accounts] == ["dave-0", "dave-1"]
    first = accounts[0]
    assert first.sip_password.get_secret_value() == "sip-dave-0"
    assert (first.sip_username, first.domain, first.caller_id, first.transport, first.source) == (
        "dave0", "sip.example.net", "dave 0", "TLS", "sql")
    assert dict(first.overrides) == {"stun": {"use_stun": "custom"}}


def test_tenant_of_the_login_must_match(rt: Runtime) -> None:
    add(rt, "erin", None, tenant="isp1")
    isp1, isp2 = (Identity("erin", backend="ldap", tenant=t) for t in ("isp1", "isp2"))
    assert rt.hooks.load_accounts(isp2, rt, LDAP_TO_SQL) == []
    assert len(rt.hooks.load_accounts(isp1, rt, LDAP_TO_SQL)) == 1
    # Without [auth] account_sources, an LDAP login never gets SQL's accounts.
    assert rt.hooks.load_accounts(isp1, rt) == []


def test_rehash_on_login_when_parameters_change(rt: Runtime) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    add(rt, "frank", weak)
    assert isinstance(login(rt, "frank", PASSWORD), Identity)
    state = zengine_sql.get_state(rt)
    assert state is not None
    with state.engine.connect() as conn:
        stored = conn.execute(sa.select(USERS.c.password_hash)
                              .where(USERS.c.username == "frank")).scalar_one()
    assert stored != weak and not needs_rehash(stored)


def test_rehash_follows_the_configured_passwords_table(
        own_db: URL, runtime_for: Callable[..., Runtime]) -> None:
    cheap = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}
    rt = runtime_for(sql_config(own_db), passwords=cheap)
    strong = PasswordHasher().hash(PASSWORD)  # argon2-cffi defaults: not what is configured
    add(rt, "fiona", strong)
    assert isinstance(login(rt, "fiona", PASSWORD), Identity)
    state = zengine_sql.get_state(rt)
    assert state is not None
    with state.engine.connect() as conn:
        stored = conn.execute(sa.select(USERS.c.password_hash)
                              .where(USERS.c.username == "fiona")).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert not rt.passwords.needs_rehash(stored)
    assert isinstance(login(rt, "fiona", PASSWORD), Identity)


def test_find_identity(rt: Runtime) -> None:
    add(rt, "gina", None, profile="basic")
    found = rt.hooks.find_identity("gina", rt, ("sql",))
    assert found is not None and found.profile == "basic"
    assert rt.hooks.find_identity("nobody", rt, ("sql",)) is None


def test_account_under_unknown_key_is_an_account_error(
        own_db: URL, runtime_for: Callable[..., Runtime]) -> None:
    rt = runtime_for(sql_config(own_db))
    add(rt, "hank", None)
    other_keys = {"k9": zengine_sql.crypto.generate_key()}
    other = runtime_for(sql_config(own_db, encryption_keys=other_keys))
    with pytest.raises(AccountDataError, match="unknown key id 'k1'"):
        other.hooks.load_accounts(Identity("hank", backend="sql"), other)


def test_http_end_to_end(own_db: URL, password_hash: str,
                         runtime_for: Callable[..., Runtime]) -> None:
    """The real app with the real Zoiper builder: a login by SQL is served its accounts."""
    add(runtime_for(sql_config(own_db)), "ivy", password_hash)
    settings = settings_from_mapping({"plugins": {"sql": sql_config(own_db)}}, environ={})
    app = create_app(settings, load_entrypoints=False, plugins=plugin_list("zoiper", "sql"))
    with TestClient(app) as client:
        ok = client.get("/provision", params={"username": "ivy", "password": PASSWORD})
        assert ok.status_code == 200, ok.text
        assert b"<ident>ivy-0</ident>" in ok.content
        assert b"sip-ivy-0" in ok.content
        wrong = client.get("/provision", params={"username": "ivy", "password": "nope"})
        assert wrong.status_code == 200 and b"<error" in wrong.content
        assert b"sip-ivy-0" not in wrong.content



def test_login_accepted_audit_counts_the_accounts(own_db: URL, password_hash: str,
                                                  runtime_for: Callable[..., Runtime]) -> None:
    from zengine import hookimpl
    from zengine.models import AuditEvent

    events: list[AuditEvent] = []

    class Recorder:
        @hookimpl
        def zengine_audit(self, event: AuditEvent) -> None:
            events.append(event)

    add(runtime_for(sql_config(own_db)), "ivy", password_hash, accounts=3)
    settings = settings_from_mapping({"plugins": {"sql": sql_config(own_db)}}, environ={})
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list("zoiper", "sql"), ("rec", Recorder())])
    with TestClient(app) as client:
        ok = client.get("/provision", params={"username": "ivy", "password": PASSWORD})
    assert ok.content.count(b"<account>") == 3, ok.text
    (accepted,) = [e for e in events if e.event == "login.accepted"]
    assert (accepted.username, accepted.account_count, accepted.backend) == ("ivy", 3, "sql")
