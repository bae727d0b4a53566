"""Hostile logins against the SQL backend: values the database cannot store never reach it,
usernames match byte-exact on every database (MariaDB's PAD SPACE and case-folding collations
included), and a wrong password on a plain or HA1 row costs what an unknown user costs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

import zengine_sql
from tests.sql.conftest import PASSWORD, sql_config
from tests.sql.pbx_schemas import create_kamailio, drop_kamailio
from zengine.app import create_app
from zengine.errors import LoginFailed
from zengine.models import Credentials, ProvisionRequest
from zengine.passwords import Passwords
from zengine.pipeline import Outcome, authenticate
from zengine.runtime import Runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine_sql import admin, specs


@pytest.fixture
def client(own_db: URL, runtime_for: Callable[..., Runtime],
           password_hash: str) -> Iterator[TestClient]:
    state = zengine_sql.get_state(runtime_for(sql_config(own_db)))
    assert state is not None
    admin.add_user(state, specs.UserSpec(
        username="carol", password_hash=password_hash,
        accounts=[specs.AccountSpec(ident="c1", sip_username="carol", sip_password="sip-carol",
                                    domain="sip.example.net")]))
    settings = settings_from_mapping({"plugins": {"sql": sql_config(own_db)}}, environ={})
    app = create_app(settings, load_entrypoints=False, plugins=plugin_list("zoiper", "sql"))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("username", ["caro\x00l", "carol\x00", "\x1b[31mcarol", "caro\x07l"])
def test_unstorable_username_is_a_400_never_a_crash(client: TestClient, username: str) -> None:
    reply = client.get("/provision", params={"username": username, "password": PASSWORD})
    assert reply.status_code == 400, reply.text
    assert b"<error" in reply.content and b"sip-carol" not in reply.content


@pytest.mark.parametrize("username", ["carol ", "carol  ", "CAROL", "Carol"])
def test_username_matches_byte_exact(client: TestClient, username: str) -> None:
    ok = client.get("/provision", params={"username": "carol", "password": PASSWORD})
    assert ok.status_code == 200 and b"sip-carol" in ok.content
    reply = client.get("/provision", params={"username": username, "password": PASSWORD})
    assert b"sip-carol" not in reply.content
    assert b"Wrong username or password" in reply.content, reply.text


def md5_ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


@pytest.fixture(params=["auto", "plain"])
def kamailio(db_url: URL, runtime_for: Callable[..., Runtime],
             request: pytest.FixtureRequest) -> Iterator[Runtime]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    create_kamailio(engine)
    rows = [
        {"username": "alice", "domain": "sip.example.net", "password": "pw-alice", "ha1": ""},
        {"username": "bob", "domain": "sip.example.net", "password": "",
         "ha1": md5_ha1("bob", "sip.example.net", "pw-bob")},
    ]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO subscriber (username, domain, password, ha1, ha1b) "
                             "VALUES (:username, :domain, :password, :ha1, '')"), rows)
    try:
        yield runtime_for(sql_config(db_url, mode="mapping", preset="kamailio",
                                     mapping={"stored_as": request.param}))
    finally:
        drop_kamailio(engine)
        engine.dispose()


def _argon2_verifications(runtime: Runtime, username: str,
                          monkeypatch: pytest.MonkeyPatch) -> int:
    calls: list[bool] = []
    real = Passwords.verify

    def counting(self: Passwords, stored: str | None, password: str) -> bool:
        calls.append(stored is None)
        return real(self, stored, password)

    monkeypatch.setattr(Passwords, "verify", counting)
    request = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="",
                               credentials=Credentials(username, SecretStr("wrong-pw")),
                               version_raw=None)
    with pytest.raises(LoginFailed):
        authenticate(request, runtime, Outcome())
    monkeypatch.setattr(Passwords, "verify", real)
    return len(calls)


def test_mapping_wrong_password_costs_what_an_unknown_user_costs(
        kamailio: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = _argon2_verifications(kamailio, "nobody", monkeypatch)
    plain = _argon2_verifications(kamailio, "alice", monkeypatch)
    ha1 = _argon2_verifications(kamailio, "bob", monkeypatch)
    state = zengine_sql.get_state(kamailio)
    assert state is not None and state.mapping is not None
    # A table that may hold hashes: one dummy each; plain text only: none at all.
    assert unknown == (0 if state.mapping.stored_as == "plain" else 1)
    assert plain == unknown and ha1 == unknown, (unknown, plain, ha1)


def test_mapping_username_matches_byte_exact(kamailio: Runtime) -> None:
    from zengine.models import Identity, Rejected

    def login(name: str, password: str) -> object:
        request = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="",
                                   credentials=None, version_raw=None)
        return kamailio.hooks.authenticate(Credentials(name, SecretStr(password)), request,
                                           kamailio, ("sql",))

    assert isinstance(login("alice", "pw-alice"), Identity)
    for name in ("alice ", "ALICE", "alice\x00"):
        # Unknown here: abstains (None, or Abstain when the table holds plain text only).
        assert not isinstance(login(name, "pw-alice"), Identity | Rejected), name
