"""Directory admins: with ``ldap_admin_group`` set, a member of that group signs in to the
console with their directory login (the LDAP backend binds as the user against the real
slapd); a non-member, a wrong password and an unknown user get the same refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tomli_w

from tests.console.conftest import SESSION_KEY, Browser, csrf_of
from tests.ldap import schema
from tests.ldap.conftest import (  # noqa: F401  (the real slapd's fixtures)
    PROFILES,
    search_table,
    slapd,
    slapd_factory,
    test_ca,
)
from tests.ldap.slapd import Slapd
from tests.serverproc import Server, running_server

pytestmark = [pytest.mark.ldap, pytest.mark.subprocess]
REFUSED = "Wrong username or password."


@pytest.fixture(scope="module")
def server(slapd: Slapd,  # noqa: F811  (the fixture imported above)
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("console-ldap")
    config = {
        "server": {"public_url": "https://prov.example.com"},
        "logging": {"format": "json", "level": "info"},
        "auth": {"chain": ["ldap"], "failure_floor_ms": 100},
        "profiles": PROFILES,
        "plugins": {
            "ldap": search_table(slapd),
            "tokens": {"sqlite_path": str(tmp / "tokens.db")},
            "admin": {"sqlite_path": str(tmp / "admin.db")},
            "audit": {"store": "sqlite", "sqlite_path": str(tmp / "audit.db"),
                      "flush_interval": 0.05},
            "console": {"enabled": True, "session_key": SESSION_KEY,
                        "ldap_admin_group": "SIP-Mobile", "ldap_scope": "read"},
        },
    }
    path = tmp / "zengine.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    with running_server(path, tmp) as running:
        yield running


def _sign_in(server: Server, username: str, password: str) -> tuple[Browser, int, str]:
    browser = Browser(server.base)
    page = browser.get("/console")
    assert 'name="username"' in page.text  # the directory sign-in form is offered
    answer = browser.post("/console/signin", {"csrf": csrf_of(page.text),
                                              "username": username, "password": password})
    return browser, answer.status_code, answer.text


def test_a_member_of_the_admin_group_signs_in_and_finds_a_user(server: Server) -> None:
    browser, status, _ = _sign_in(server, "bob", schema.PASSWORDS["bob"])
    assert status == 303
    session = browser.session()
    assert session["user"] == "bob" and session["via"] == "ldap"
    assert "bob" in browser.get("/console").text
    assert schema.PASSWORDS["bob"] not in repr(session)
    found = browser.get("/console/users", q="alice")  # a directory: exact name lookup
    assert "/console/user?name=alice" in found.text
    page = browser.get("/console/user", name="alice")
    assert page.status_code == 200 and "1001" in page.text
    assert "alice-sip-secret" not in page.text  # the document is masked
    # ldap_scope = "read": seeing, not changing.
    refused = browser.post("/console/tokens/issue", {"csrf": csrf_of(page.text),
                                                     "user": "alice"})
    assert refused.status_code == 403 and "scope" in refused.text


@pytest.mark.parametrize(("username", "password"), [
    ("alice", schema.PASSWORDS["alice"]),   # right password, not in the group
    ("bob", "not-bobs-password"),
    ("nobody-at-all", "whatever-1"),
])
def test_everyone_else_is_refused_alike(server: Server, username: str, password: str) -> None:
    browser, status, text = _sign_in(server, username, password)
    assert status == 403 and REFUSED in text
    assert "user" not in browser.session()


def test_sign_ins_are_audited_without_the_password(server: Server) -> None:
    _sign_in(server, "dave", schema.PASSWORDS["dave"])
    _sign_in(server, "alice", schema.PASSWORDS["alice"])
    output = server.output()
    assert "audit.console.signin" in output
    for password in schema.PASSWORDS.values():
        assert password not in output
