"""End to end over HTTP: the real app with the Zoiper builder and the LDAP backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from starlette.testclient import TestClient

import zengine_ldap
from tests.ldap import schema
from tests.ldap.conftest import PROFILES, SlapdFactory, search_table
from tests.ldap.slapd import Slapd
from zengine.app import create_app
from zengine.passwords import hash_password
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list

pytestmark = pytest.mark.ldap


def client_for(table: dict[str, Any], *extra_plugins: str,
               **top: Any) -> Iterator[TestClient]:
    settings = settings_from_mapping({"profiles": PROFILES, **top,
                                      "plugins": {"ldap": table, **top.pop("plugins", {})}},
                                     environ={}, base_dir=Path.cwd())
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list("zoiper", *extra_plugins), ("ldap", zengine_ldap)])
    with TestClient(app) as client:
        yield client


def error_text(body: bytes) -> str:
    root = etree.fromstring(body)
    assert root.tag == "error"
    return root.text or ""


@pytest.fixture(scope="module")
def client(slapd: Slapd) -> Iterator[TestClient]:
    yield from client_for(search_table(slapd))


def get(client: TestClient, username: str, password: str) -> Any:
    return client.get("/id.php", params={"username": username, "password": password,
                                         "version": "1.14"})


def test_directory_login_gets_its_accounts(client: TestClient) -> None:
    response = get(client, "bob", schema.PASSWORDS["bob"])
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    accounts = root.findall(".//account")
    assert [a.findtext("username") for a in accounts] == ["2001", "2002"]
    assert {a.findtext("password") for a in accounts} == {"bob-sip-secret"}
    assert [a.findtext("name") for a in accounts] == ["Bob Builder (2001)", "Bob Builder (2002)"]


def test_group_profile_and_mapped_fields_reach_the_document(client: TestClient) -> None:
    response = get(client, "alice", schema.PASSWORDS["alice"])
    (account,) = etree.fromstring(response.content).findall(".//account")
    assert account.findtext("SIP_transport_type") == "TLS"  # profile "office" via sip-office
    assert account.findtext("SIP_callerId") == account.findtext("name") == "Alice Example"
    assert account.findtext("SIP_domain") == "sip.example.com"


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    wrong = get(client, "alice", "not-it")
    unknown = get(client, "nobody", "not-it")
    injected = get(client, "*", schema.PASSWORDS["alice"])
    assert wrong.status_code == unknown.status_code == injected.status_code == 200
    assert error_text(wrong.content) == error_text(unknown.content) == \
        error_text(injected.content) == "Wrong username or password."


def test_user_without_sip_password_gets_no_accounts_message(client: TestClient) -> None:
    response = get(client, "carol", schema.PASSWORDS["carol"])
    assert "No SIP account" in error_text(response.content)


def test_empty_password_is_refused_before_the_directory(client: TestClient) -> None:
    response = get(client, "alice", "")
    assert "password" in error_text(response.content).lower()


def test_outage_is_503_over_http(slapd_factory: SlapdFactory) -> None:
    outage = slapd_factory("http-outage")
    for client in client_for(search_table(outage)):
        assert get(client, "alice", schema.PASSWORDS["alice"]).status_code == 200
        outage.stop()
        response = get(client, "alice", schema.PASSWORDS["alice"])
        assert response.status_code == 503
        assert error_text(response.content)
        outage.start()
        assert get(client, "alice", schema.PASSWORDS["alice"]).status_code == 200


def test_ldap_login_with_accounts_from_another_plugin(slapd: Slapd, tmp_path: Path) -> None:
    # Log in by directory password; the accounts come from the static plugin, keyed by the
    # directory's username. No code knows about the combination: only the hook contract.
    # static is outside the chain, so it is an account source for every login.
    users = tmp_path / "users.toml"
    users.write_text(f'''
[users.alice]
password_hash = "{hash_password("static-password-not-used")}"

[[users.alice.accounts]]
ident = "alice-static"
sip_username = "9001"
sip_password = "from-static"
domain = "static.example.com"
''', encoding="utf-8")
    table = search_table(slapd, accounts_from="none")
    del table["domain"]
    for client in client_for(table, "static", auth={"chain": ["ldap"]},
                             plugins={"static": {"users_file": str(users)}}):
        response = get(client, "ALICE", schema.PASSWORDS["alice"])
        assert response.status_code == 200
        (account,) = etree.fromstring(response.content).findall(".//account")
        assert account.findtext("username") == "9001"
        assert account.findtext("password") == "from-static"
        # The static password is not a login here: only LDAP is in the chain.
        assert get(client, "alice", "static-password-not-used").status_code == 200
        assert error_text(get(client, "alice", "static-password-not-used").content)


def test_login_accepted_audit_has_the_directorys_spelling_and_the_account_count(
        slapd: Slapd) -> None:
    """uid matches case-insensitively in the real slapd: ``BOB`` logs in as the directory's
    ``bob``, and the audit line says so, with bob's two accounts."""
    from zengine import hookimpl
    from zengine.models import AuditEvent

    events: list[AuditEvent] = []

    class Recorder:
        @hookimpl
        def zengine_audit(self, event: AuditEvent) -> None:
            events.append(event)

    settings = settings_from_mapping({"profiles": PROFILES,
                                      "plugins": {"ldap": search_table(slapd)}},
                                     environ={}, base_dir=Path.cwd())
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list("zoiper"), ("ldap", zengine_ldap), ("rec", Recorder())])
    with TestClient(app) as client:
        response = get(client, "BOB", schema.PASSWORDS["bob"])
    assert response.content.count(b"<account>") == 2, response.text
    (accepted,) = [e for e in events if e.event == "login.accepted"]
    assert (accepted.username, accepted.account_count, accepted.backend) == ("bob", 2, "ldap")
    (served,) = [e for e in events if e.event == "document.served"]
    assert served.username == "bob"
