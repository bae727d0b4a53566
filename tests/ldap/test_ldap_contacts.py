"""The directory offered to Zoiper5 as its contact service, against the real slapd.

The document's service is then used the way Zoiper5 would use it: StartTLS to its host, a
bind with its account, a search under its root. That account reads contacts and nothing more.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.ldap import schema
from tests.ldap.conftest import search_table
from tests.ldap.slapd import Slapd
from tests.ldap.test_ldap_http import client_for
from zengine import testing
from zengine.errors import ConfigError
from zengine.models import Version
from zengine.testing import check_structure
from zengine_ldap.servers import ContextTls
from zengine_zoiper import checks

pytestmark = pytest.mark.ldap


def _contact(**overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"name": "Example directory", "bind_dn": schema.PHONEBOOK_DN,
                             "bind_password": schema.PHONEBOOK_PASSWORD, "limit": 50,
                             "attribute_mappings": {"display_name": "displayName",
                                                    "work_phone": "telephoneNumber"}}
    table.update(overrides)
    return table


def _desktop(client: TestClient, user: str) -> bytes:
    token = base64.b64encode(f"{user}:{schema.PASSWORDS[user]}".encode()).decode()
    response = client.get("/desktop", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture(scope="module")
def client(slapd: Slapd) -> Iterator[TestClient]:
    yield from client_for(search_table(slapd, contact_service=_contact()))


def _service(body: bytes) -> etree._Element | None:
    return etree.fromstring(body).find("contact_services/contact_service")


def test_desktop_documents_offer_the_directory(client: TestClient, slapd: Slapd) -> None:
    testing.STRUCTURE_CHECKERS.setdefault("desktop", checks.check_desktop)
    body = _desktop(client, "alice")
    assert check_structure(body, "desktop", Version(5, 0)) == []
    service = _service(body)
    assert service is not None
    assert service.findtext("ident") == "zengine-ldap"
    assert service.findtext("type") == "ldap"
    assert service.findtext("host") == f"127.0.0.1:{slapd.port}"
    assert service.findtext("root") == schema.BASE
    assert service.findtext("username") == schema.PHONEBOOK_DN
    assert service.findtext("password") == schema.PHONEBOOK_PASSWORD
    assert service.findtext("use_start_tls") == "true"  # as the plugin itself connects
    # Never the user's password, never the plugin's own service account.
    for secret in (schema.PASSWORDS["alice"], schema.SERVICE_PASSWORD):
        assert secret.encode() not in body
    assert schema.SERVICE_DN.encode() not in body


def test_mobile_documents_never_carry_it(client: TestClient) -> None:
    response = client.get("/id.php", params={"username": "alice", "version": "1.14",
                                             "password": schema.PASSWORDS["alice"]})
    assert response.status_code == 200
    assert b"contact_service" not in response.content
    assert schema.PHONEBOOK_PASSWORD.encode() not in response.content


def test_the_offered_service_works_as_zoiper_would_use_it(client: TestClient,
                                                          slapd: Slapd) -> None:
    service = _service(_desktop(client, "bob"))
    assert service is not None
    host, _, port = (service.findtext("host") or "").rpartition(":")
    # Chain and host name checked by the ssl module (ldap3's own check is deprecated).
    tls = ContextTls(ssl.create_default_context(cafile=str(slapd.ca_file)))
    server = ldap3.Server(host, port=int(port), tls=tls, connect_timeout=2)
    mapped = [m.findtext("attribute_name") or "" for m in
              service.iterfind("attribute_mappings/attribute_mapping")]
    with ldap3.Connection(server, user=service.findtext("username"),
                          password=service.findtext("password"), receive_timeout=2) as conn:
        assert conn.start_tls()
        assert conn.bind()
        conn.search(service.findtext("root") or "", "(telephoneNumber=1001)",
                    attributes=[*mapped, "sipPassword", "userPassword"])
        (entry,) = conn.entries
        assert entry.entry_attributes_as_dict["displayName"] == ["Alice Example"]
        # Read-only and blind to secrets: the ACL gives this account contacts, nothing more.
        found = entry.entry_attributes_as_dict
        assert found.get("sipPassword", []) == [] and found.get("userPassword", []) == []
        assert not conn.modify(  # type: ignore[no-untyped-call]  # types-ldap3 leaves it untyped
            entry.entry_dn, {"telephoneNumber": [(ldap3.MODIFY_REPLACE, ["666"])]})
        assert conn.result["description"] == "insufficientAccessRights"


def test_profiles_limit_who_is_offered_the_directory(slapd: Slapd) -> None:
    # alice is in sip-office only; bob's first matching group is sip-mobile.
    for client in client_for(search_table(slapd, contact_service=_contact(profiles=["mobile"]))):
        assert _service(_desktop(client, "alice")) is None
        assert _service(_desktop(client, "bob")) is not None


@pytest.mark.parametrize(("contact", "message"), [
    ({"bind_dn": schema.SERVICE_DN.upper()}, "is the plugin's service_dn"),
    ({"bind_password": None}, "set bind_password"),
    ({"profiles": ["nope"]}, "unknown profiles ['nope']"),
    ({"attribute_mappings": {"nickname": "cn"}}, "unknown contact property"),
])
def test_unsafe_or_wrong_contact_service_is_a_config_error(slapd: Slapd,
                                                           contact: dict[str, Any],
                                                           message: str) -> None:
    table = search_table(slapd, contact_service={
        k: v for k, v in _contact(**contact).items() if v is not None})
    with pytest.raises(ConfigError) as info:
        for _client in client_for(table):
            pass
    assert message in str(info.value)
    assert schema.PHONEBOOK_PASSWORD not in str(info.value)


def test_ldaps_only_servers_need_an_explicit_host(slapd: Slapd) -> None:
    table = search_table(slapd, servers=[slapd.ldaps_url], start_tls=False,
                         contact_service=_contact())
    with pytest.raises(ConfigError, match="StartTLS, not ldaps"):
        for _client in client_for(table):
            pass
    table["contact_service"] = _contact(host=f"127.0.0.1:{slapd.port}")
    for client in client_for(table):
        service = _service(_desktop(client, "alice"))
        assert service is not None and service.findtext("host") == f"127.0.0.1:{slapd.port}"
