"""The admin API's writes, key store and audit on SQLite, PostgreSQL and MariaDB: the real
server on each database (the module's own, from tests/sql)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from tests.admin.conftest import AdminServer, start

USER = {"username": "Mona", "password": "pw-mona-1234", "tenant": "acme",
        "accounts": [{"ident": "mona-1", "sip_username": "mona", "sip_password": "s1p-M0na",
                      "domain": "sip.example.com", "transport": "tls"}]}


@pytest.fixture(scope="module")
def srv(db_url: URL, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    yield from start(tmp_path_factory.mktemp("db"), db_url)


def test_keys_live_in_the_sql_database(srv: AdminServer, db_url: URL) -> None:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, key_hash FROM zengine_api_keys")).all()
    finally:
        engine.dispose()
    assert {row.name for row in rows} >= {"admin", "reader", "onboarding", "acme-admin"}
    assert all(key[16:] not in str(rows) for key in srv.keys.values())


def test_user_lifecycle(srv: AdminServer) -> None:
    admin, acme = srv.client(), srv.client("acme")
    made = admin.call("POST", "/api/v1/users", USER)
    assert made.status == 201, made.body
    assert made.json()["account_list"][0]["transport"] == "TLS"
    assert admin.call("POST", "/api/v1/users", USER).status == 409
    # Byte-exact names on every database (MariaDB's default collation would fold them).
    assert admin.call("GET", "/api/v1/users/mona").status == 404
    assert acme.call("GET", "/api/v1/users/Mona").json()["tenant"] == "acme"
    assert acme.call("PATCH", "/api/v1/users/Mona",
                     {"display_name": "Mona L.", "enabled": False}).status == 200
    detail = acme.call("GET", "/api/v1/users/Mona").json()
    assert (detail["display_name"], detail["enabled"]) == ("Mona L.", False)
    assert acme.call("POST", "/api/v1/users/Mona/accounts", {
        "ident": "mona-2", "sip_username": "mona2", "sip_password": "s1p-2",
        "domain": "sip.example.com"}).status == 201
    assert acme.call("POST", "/api/v1/users/Mona/accounts", {
        "ident": "mona-2", "sip_username": "x", "sip_password": "y",
        "domain": "z"}).status == 409
    assert acme.call("PUT", "/api/v1/users/Mona/accounts/mona-2/sip-password",
                     {"sip_password": "s1p-3"}).status == 204
    assert acme.call("PUT", "/api/v1/users/Mona/accounts/nope/sip-password",
                     {"sip_password": "s1p-3"}).status == 404
    assert acme.call("DELETE", "/api/v1/users/Mona/accounts/mona-2").status == 204
    assert acme.call("PUT", "/api/v1/users/Mona/password", {"password": None}).status == 204
    assert acme.call("GET", "/api/v1/users/Mona").json()["has_password"] is False
    names = [u["username"] for u in acme.call("GET", "/api/v1/users?q=MON").json()["items"]]
    assert names == ["Mona"]
    assert [t["name"] for t in acme.call("GET", "/api/v1/tenants").json()] == ["acme"]
    assert acme.call("DELETE", "/api/v1/users/Mona").status == 204
    assert admin.call("GET", "/api/v1/users/Mona").status == 404


def test_search_treats_like_metacharacters_literally(srv: AdminServer) -> None:
    admin = srv.client()
    for name in ("a_b", "axb", "50%"):
        assert admin.call("POST", "/api/v1/users", {"username": name}).status == 201
    found = {u["username"] for u in admin.call("GET", "/api/v1/users?q=a_").json()["items"]}
    assert "a_b" in found and "axb" not in found
    found = {u["username"] for u in admin.call("GET", "/api/v1/users?q=0%25").json()["items"]}
    assert found == {"50%"}


def test_audit_rows_in_the_database(srv: AdminServer) -> None:
    admin = srv.client()
    assert admin.call("POST", "/api/v1/users", {"username": "nina"}).status == 201
    deadline = time.monotonic() + 10
    items: list[dict[str, object]] = []
    while not items and time.monotonic() < deadline:
        items = admin.call("GET", "/api/v1/audit?username=nina&event=admin.user.created"
                           ).json()["items"]
        time.sleep(0.1)
    assert items and items[0]["client_addr"] == "127.0.0.1"
