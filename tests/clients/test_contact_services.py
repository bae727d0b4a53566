"""Zoiper5 contact services from static config: per profile, desktop only, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.clients.conftest import PASSWORD, make_settings, open_client
from zengine import catalog
from zengine.errors import ConfigError
from zengine.models import Version
from zengine.testing import check_structure

ALICE = {"user": "alice", "pass": PASSWORD}


def test_desktop_gets_the_services_of_its_accounts_profiles(client: TestClient) -> None:
    body = client.get("/desktop", params=ALICE).content
    assert check_structure(body, "desktop", Version(5, 0)) == []
    root = etree.fromstring(body)
    # alice-tls and alice-iax share profile "full": its service appears once.
    assert [s.findtext("ident") for s in root.iterfind("contact_services/contact_service")] == [
        "company-book", "office-ldap"]
    ldap = root.find("contact_services/contact_service[ident='office-ldap']")
    assert ldap is not None
    assert ldap.findtext("password") == "ro&<bind>"  # escaped once by the serialiser
    assert [m.findtext("property_type") for m in ldap.iterfind(
        "attribute_mappings/attribute_mapping")] == ["display_name", "work_phone"]
    # Only what was configured: Zoiper keeps its own defaults for the rest.
    assert ldap.find("authentication_flags") is None
    services = root.find("contact_services")
    assert services is not None and root.index(services) == len(root) - 1


@pytest.mark.parametrize("version", ["1.14", "1.8"])
def test_mobile_and_legacy_never_get_contact_services(client: TestClient,
                                                      version: str) -> None:
    for params in ({"u": "alice", "p": PASSWORD, "v": version},
                   {"u": "alice", "p": PASSWORD, "v": "1.0"}):
        body = client.get("/id.php", params=params).content
        assert b"contact_service" not in body
        assert b"book-secret" not in body


def _service(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ident": "dir", "name": "Directory", "type": "ldap",
                            "host": "ldap.example.com", "password": "s3cret-bind"}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize(("service", "message"), [
    (_service(type="local"), "allowed ldap, xml"),
    (_service(type="google"), "allowed ldap, xml"),
    (_service(host=None), "host is required"),
    (_service(ident="ContactServiceLocal"), "must not be provisioned"),
    (_service(use_start_tls="maybe"), "use_start_tls"),
    (_service(uri="https://x"), "unknown option 'uri' for a ldap"),
    (_service(type="xml", host=None, uri="https://x", auth_type="digest"), "auth_type"),
    (_service(type="xml", host=None, uri="https://x", attribute_mappings={"cn": "cn"}),
     "unknown option 'attribute_mappings'"),
    (_service(attribute_mappings={"nickname": "cn"}), "unknown contact property"),
    (_service(limit=-3), "limit"),
    (_service(name="a\x00b"), "XML 1.0"),
])
def test_bad_services_are_config_errors_naming_the_option(users_file: Path,
                                                          service: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(users_file, profiles={"p": {"contact_services": [service]}})
    assert message in str(info.value)
    assert "s3cret-bind" not in str(info.value)


def test_duplicate_idents_in_one_list_are_refused() -> None:
    field = catalog.account_fields()["contact_services"]
    with pytest.raises(ConfigError, match="given twice"):
        catalog.coerce(field, [_service(), _service()], "x")


def test_two_profiles_offering_one_ident_differently_fail_closed(users_file: Path) -> None:
    settings = make_settings(users_file, profiles={
        "full": {"contact_services": [_service()]},
        "office": {"contact_services": [_service(host="other.example.com")]},
    })
    with open_client(settings) as client:
        response = client.get("/desktop", params=ALICE)
    assert response.status_code == 500
    assert b"contact_service" not in response.content
