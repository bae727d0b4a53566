"""Mapping mode over tables zengine did not create: the Kamailio and Asterisk presets, and an
explicit mapping with awkward names and argon2 hashes. Same tests on all three databases."""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

from tests.sql.conftest import PASSWORD, sql_config
from tests.sql.pbx_schemas import asterisk_metadata, create_kamailio, drop_kamailio
from zengine.app import create_app
from zengine.models import Abstain, Account, Credentials, Identity, ProvisionRequest, Rejected
from zengine.runtime import Runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list

REQUEST = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)


def md5_ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def login(runtime: Runtime, username: str, password: str) -> Identity | Rejected | Abstain | None:
    return runtime.hooks.authenticate(Credentials(username, SecretStr(password)), REQUEST,
                                      runtime, ("sql",))


def login_and_load(runtime: Runtime, username: str,
                   password: str) -> tuple[Identity | Rejected | Abstain | None, list[Account]]:
    """Like one request: authenticate, then load accounts, in one fresh context."""
    def run() -> tuple[Identity | Rejected | Abstain | None, list[Account]]:
        result = login(runtime, username, password)
        if not isinstance(result, Identity):
            return result, []
        return result, runtime.hooks.load_accounts(result, runtime)
    return contextvars.copy_context().run(run)


@pytest.fixture
def engine(db_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


# --- Kamailio ------------------------------------------------------------------------------


@pytest.fixture
def kamailio(engine: sa.Engine, db_url: URL, runtime_for: Callable[..., Runtime],
             ) -> Iterator[Runtime]:
    create_kamailio(engine)
    rows = [
        {"username": "alice", "domain": "sip.example.net", "password": "pw-alice",
         "ha1": md5_ha1("alice", "sip.example.net", "pw-alice")},
        # HA1 only: the realm is the domain, as Kamailio's auth_db computes it.
        {"username": "bob", "domain": "sip.example.net", "password": "",
         "ha1": md5_ha1("bob", "sip.example.net", "pw-bob")},
        {"username": "carol", "domain": "a.example", "password": "pw-carol-a", "ha1": ""},
        {"username": "carol", "domain": "b.example", "password": "pw-carol-b", "ha1": ""},
    ]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO subscriber (username, domain, password, ha1, ha1b) "
                             "VALUES (:username, :domain, :password, :ha1, '')"), rows)
    try:
        yield runtime_for(sql_config(db_url, mode="mapping", preset="kamailio"))
    finally:
        drop_kamailio(engine)


def test_kamailio_plaintext(kamailio: Runtime) -> None:
    identity, accounts = login_and_load(kamailio, "alice", "pw-alice")
    assert isinstance(identity, Identity) and identity.backend == "sql"
    assert [(a.ident, a.sip_username, a.domain, a.sip_password.get_secret_value())
            for a in accounts] == [("alice@sip.example.net", "alice", "sip.example.net",
                                    "pw-alice")]
    assert isinstance(login(kamailio, "alice", "pw-alicE"), Rejected)
    assert isinstance(login(kamailio, "alice", ""), Rejected)
    # Plain passwords: the lookup was the whole cost, so the abstention says it is spent.
    assert login(kamailio, "nobody", "pw-alice") == Abstain("sql")


def test_kamailio_ha1(kamailio: Runtime) -> None:
    identity, accounts = login_and_load(kamailio, "bob", "pw-bob")
    assert isinstance(identity, Identity)
    # The database cannot give the SIP password back; it is the one just verified.
    assert [a.sip_password.get_secret_value() for a in accounts] == ["pw-bob"]
    assert isinstance(login(kamailio, "bob", "pw-bobb"), Rejected)
    # Without a login in this request (e.g. `zengine render`) there is nothing to provision.
    assert kamailio.hooks.load_accounts(Identity("bob", backend="sql"), kamailio) == []


def test_kamailio_user_in_two_domains(kamailio: Runtime) -> None:
    result = login(kamailio, "carol", "pw-carol-a")
    assert isinstance(result, Rejected) and "user@domain" in result.reason
    identity, accounts = login_and_load(kamailio, "carol@b.example", "pw-carol-b")
    assert isinstance(identity, Identity)
    assert [a.ident for a in accounts] == ["carol@b.example"]
    assert isinstance(login(kamailio, "carol@a.example", "pw-carol-b"), Rejected)


def test_kamailio_fixed_domain(kamailio: Runtime, db_url: URL,
                               runtime_for: Callable[..., Runtime]) -> None:
    only_a = runtime_for(sql_config(db_url, mode="mapping", preset="kamailio",
                                    mapping={"domain": "a.example"}))
    assert isinstance(login(only_a, "carol", "pw-carol-a"), Identity)
    assert login(only_a, "alice", "pw-alice") in (None, Abstain("sql"))


# --- Asterisk realtime PJSIP ----------------------------------------------------------------


@pytest.fixture
def asterisk(engine: sa.Engine, db_url: URL, runtime_for: Callable[..., Runtime],
             ) -> Iterator[Runtime]:
    meta = asterisk_metadata()
    meta.create_all(engine)
    auths, endpoints = meta.tables["ps_auths"], meta.tables["ps_endpoints"]
    def rows(table: sa.Table, *items: dict[str, str]) -> list[dict[str, str | None]]:
        # executemany wants the same keys in every row; the rest stay NULL.
        keys = {key for item in items for key in item}
        return [{key: item.get(key) for key in keys} for item in items]

    with engine.begin() as conn:
        conn.execute(auths.insert(), rows(auths,
            {"id": "1001", "auth_type": "userpass", "username": "1001", "password": "pw-1001"},
            {"id": "1002", "auth_type": "md5", "username": "1002",
             "md5_cred": md5_ha1("1002", "asterisk", "pw-1002")},
            {"id": "1003", "auth_type": "md5", "username": "1003", "realm": "pbx.example.net",
             "md5_cred": md5_ha1("1003", "pbx.example.net", "pw-1003")},
        ))
        conn.execute(endpoints.insert(), rows(endpoints,
            {"id": "1001", "auth": "1001", "aors": "1001", "context": "from-internal",
             "callerid": '"Alice" <1001>', "direct_media": "no"},
            {"id": "1002", "auth": "1002", "aors": "1002", "from_domain": "other.example.net",
             "outbound_proxy": "sip:proxy.example.net\\;lr"},
            {"id": "1003-desk", "auth": "1003", "aors": "1003"},
            {"id": "1003-mobile", "auth": "1003", "aors": "1003"},
        ))
    try:
        yield runtime_for(sql_config(db_url, mode="mapping", preset="asterisk_pjsip",
                                     mapping={"domain": "pbx.example.net"}))
    finally:
        meta.drop_all(engine)


def test_asterisk_userpass(asterisk: Runtime) -> None:
    identity, accounts = login_and_load(asterisk, "1001", "pw-1001")
    assert isinstance(identity, Identity)
    assert len(accounts) == 1
    account = accounts[0]
    assert (account.ident, account.sip_username, account.domain, account.caller_id) == (
        "1001", "1001", "pbx.example.net", '"Alice" <1001>')
    assert account.sip_password.get_secret_value() == "pw-1001"
    assert isinstance(login(asterisk, "1001", "pw-1002"), Rejected)
    assert login(asterisk, "9999", "pw-1001") in (None, Abstain("sql"))


def test_asterisk_md5_default_realm(asterisk: Runtime) -> None:
    identity, accounts = login_and_load(asterisk, "1002", "pw-1002")
    assert isinstance(identity, Identity)
    assert [(a.ident, a.domain, a.outbound_proxy, a.sip_password.get_secret_value())
            for a in accounts] == [("1002", "other.example.net", "sip:proxy.example.net\\;lr",
                                    "pw-1002")]
    assert isinstance(login(asterisk, "1002", "pw-1001"), Rejected)


def test_asterisk_md5_row_realm_and_two_endpoints(asterisk: Runtime) -> None:
    identity, accounts = login_and_load(asterisk, "1003", "pw-1003")
    assert isinstance(identity, Identity)
    assert [a.ident for a in accounts] == ["1003-desk", "1003-mobile"]
    assert {a.sip_password.get_secret_value() for a in accounts} == {"pw-1003"}


def test_asterisk_over_http(asterisk: Runtime, db_url: URL) -> None:
    config = sql_config(db_url, mode="mapping", preset="asterisk_pjsip",
                        mapping={"domain": "pbx.example.net"})
    settings = settings_from_mapping({"plugins": {"sql": config}}, environ={})
    app = create_app(settings, load_entrypoints=False, plugins=plugin_list("zoiper", "sql"))
    with TestClient(app) as client:
        ok = client.get("/provision", params={"username": "1003", "password": "pw-1003"})
        assert ok.status_code == 200, ok.text
        assert ok.content.count(b"pw-1003") == 2
        assert b"<ident>1003-mobile</ident>" in ok.content


# --- explicit mapping: quoting and hashes ---------------------------------------------------


def test_explicit_mapping_quotes_names_and_checks_argon2(
        engine: sa.Engine, db_url: URL, runtime_for: Callable[..., Runtime],
        password_hash: str) -> None:
    meta = sa.MetaData()
    table = sa.Table("Sub Scriber", meta, sa.Column("Login Name", sa.String(64), unique=True),
                     sa.Column("Pass; Hash", sa.String(255)),
                     sa.Column("sip pw", sa.String(64)))
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"Login Name": "zed", "Pass; Hash": password_hash}])
        runtime = runtime_for(sql_config(db_url, mode="mapping", mapping={
            "table": "Sub Scriber", "login_column": "Login Name",
            "password_column": "Pass; Hash", "stored_as": "argon2", "domain": "x.example"}))
        identity, accounts = login_and_load(runtime, "zed", PASSWORD)
        assert isinstance(identity, Identity)
        assert [(a.ident, a.sip_password.get_secret_value()) for a in accounts] == [
            ("zed@x.example", PASSWORD)]
        assert isinstance(login(runtime, "zed", "wrong"), Rejected)
        assert login(runtime, "zed' OR '1'='1", PASSWORD) in (None, Abstain("sql"))
    finally:
        meta.drop_all(engine)
