"""Every family over HTTP: version coverage, HTTP Basic, branded-client detection, errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.clients.conftest import GOLDEN, PASSWORD, make_settings, open_client
from zengine import catalog, hookimpl
from zengine.models import ClientInfo, ProvisionRequest, Version
from zengine.runtime import Runtime
from zengine.testing import check_structure
from zengine_zoiper import desktop_fields, legacy
from zengine_zoiper.mobile_transforms import element_path

ALICE = {"username": "alice", "password": PASSWORD}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def error_of(response_body: bytes) -> str:
    root = etree.fromstring(response_body)
    assert root.tag == "error" and root.get("code") == "1"
    return root.text or ""


@pytest.mark.parametrize("minor", range(1, 17))
def test_each_mobile_version_has_exactly_the_fields_it_knows(client: TestClient,
                                                             minor: int) -> None:
    response = client.get("/id.php", params={**ALICE, "version": f"1.{minor}"})
    assert response.status_code == 200
    served = Version(1, min(minor, 14))
    assert check_structure(response.content, "mobile", served) == []
    root = etree.fromstring(response.content)
    assert root.findtext("prov_version") == str(served)
    account = root.find("accounts/account")
    assert account is not None
    # The config sets every field with a since-version: present exactly when known.
    for field in catalog.ACCOUNT_FIELDS:
        if field.since is None or field.type == "codecs":
            continue
        known = field.since <= served
        assert (account.find(element_path(field, served)) is not None) is known, field.path
    assert (root.find("diagnostics") is not None) is (served >= Version(1, 5))


def test_no_version_legacy_setting_serves_the_legacy_golden(users_file: Path) -> None:
    with open_client(make_settings(users_file, clients={"no_version": "legacy"})) as client:
        response = client.get("/id.php", params=ALICE)
    assert response.content == (GOLDEN / "legacy" / "1.0.xml").read_bytes()


def test_desktop_has_no_mobile_only_field_and_lower_case_enums(client: TestClient) -> None:
    response = client.get("/desktop", params={"user": "alice", "pass": PASSWORD})
    root = etree.fromstring(response.content)
    tags = {node.tag for node in root.iter()}
    assert not tags & {"balance_url", "rate_url", "quality_rating_url", "token", "token_url",
                       "enable_push_notifications", "SIP_use_reg_event", "prov_version",
                       "msrp", "sms", "breakpad", "customer_sid", "key_agreement"}
    assert "key_agreement_method" in tags and "SIP_callerId" in tags
    first = root.find("accounts/account")
    assert first is not None
    assert first.findtext("protocol") == "sip"
    assert first.findtext("SIP_transport_type") == "tls"
    assert first.findtext("SIP_srtp_mode") == "sdes"
    assert {c.findtext("vbr") for c in first.iterfind("codecs/codec")} <= {"true", "false",
                                                                           None}


def test_basic_auth_on_the_mobile_path_too(client: TestClient) -> None:
    response = client.get("/id.php", params={"version": "1.12"},
                          headers=basic("alice", PASSWORD))
    assert response.content == (GOLDEN / "mobile" / "1.12.xml").read_bytes()


def test_query_credentials_win_over_basic(client: TestClient) -> None:
    good_query = client.get("/desktop", params={"user": "alice", "pass": PASSWORD},
                            headers=basic("alice", "wrong"))
    assert good_query.content == (GOLDEN / "desktop" / "query.xml").read_bytes()
    bad_query = client.get("/desktop", params={"user": "alice", "pass": "wrong"},
                           headers=basic("alice", PASSWORD))
    assert error_of(bad_query.content) == "Wrong username or password."


def test_wrong_basic_password_is_a_wrong_login(client: TestClient) -> None:
    response = client.get("/desktop", headers=basic("alice", "nope"))
    # Challenged again (test_challenge.py), with the wrong-login document as the body.
    assert response.status_code == 401
    assert error_of(response.content) == "Wrong username or password."


@pytest.mark.parametrize("header", ["Basic !!!not-base64!!!", "Basic",
                                    f"Basic {base64.b64encode(b'no-colon').decode()}",
                                    "Bearer abc.def", "Digest username=alice"])
def test_malformed_authorization_is_a_bad_request(client: TestClient, header: str) -> None:
    response = client.get("/desktop", headers={"Authorization": header})
    assert response.status_code == 400
    assert error_of(response.content).startswith("Bad request")


def test_no_credentials_at_all(client: TestClient) -> None:
    response = client.get("/desktop")
    assert error_of(response.content).startswith("No username given")


@pytest.mark.parametrize("version", ["abc", "0.9", "1.x"])
def test_bad_version_error_document(client: TestClient, version: str) -> None:
    response = client.get("/id.php", params={**ALICE, "version": version})
    assert response.status_code == 200  # [errors.status] bad_version default
    assert error_of(response.content).startswith("Unknown provisioning version")


def test_unknown_format_error_document(client: TestClient) -> None:
    response = client.get("/id.php", params={**ALICE, "format": "xmpp"})
    assert response.status_code == 400
    assert "unknown document format" in error_of(response.content)


class AcmePhone:
    """An ISP's branded client, recognised by its User-Agent: legacy format, whatever version
    it claims. Nothing in zengine or the zoiper plugin knows about it."""

    @hookimpl(tryfirst=True)
    def zengine_detect_client(self, request: ProvisionRequest,
                              runtime: Runtime) -> ClientInfo | None:
        if request.headers.get("user-agent", "").startswith("AcmePhone/"):
            return ClientInfo(legacy.FAMILY, legacy.VERSION, request.version_raw)
        return None


def test_branded_client_detection_is_a_plugin_decision(users_file: Path) -> None:
    settings = make_settings(users_file)
    with open_client(settings, ("acme", AcmePhone())) as client:
        branded = client.get("/id.php", params={**ALICE, "version": "1.14"},
                             headers={"User-Agent": "AcmePhone/2.1"})
        other = client.get("/id.php", params={**ALICE, "version": "1.14"},
                           headers={"User-Agent": "Zoiper/2.10"})
    assert branded.content == (GOLDEN / "legacy" / "1.0.xml").read_bytes()
    assert other.content == (GOLDEN / "mobile" / "1.14.xml").read_bytes()


def test_rtsp_account_is_left_out_where_it_cannot_be_expressed(tmp_path: Path) -> None:
    from zengine.passwords import hash_password

    users = tmp_path / "users.toml"
    users.write_text(f"""
[users.carol]
password_hash = "{hash_password("pw")}"
[[users.carol.accounts]]
ident = "cam"
sip_username = "cam"
sip_password = "x"
domain = "cam.example.com"
overrides = {{ protocol = "RTSP" }}
[[users.carol.accounts]]
ident = "phone"
sip_username = "2001"
sip_password = "y"
domain = "pbx.example.com"
""", encoding="utf-8")
    settings = make_settings(users, profiles={}, defaults={})
    with open_client(settings) as client:
        mobile = client.get("/id.php", params={"u": "carol", "p": "pw", "v": "1.14"})
        old = client.get("/id.php", params={"u": "carol", "p": "pw", "v": "1.0"})
        pc = client.get("/desktop", params={"u": "carol", "p": "pw"})
    assert len(etree.fromstring(mobile.content).findall("accounts/account")) == 2
    for body, family, version in ((old.content, "legacy", legacy.VERSION),
                                  (pc.content, "desktop", Version(5, 0))):
        assert check_structure(body, family, version) == []
        assert len(etree.fromstring(body).findall("accounts/account")) == 1
    assert desktop_fields.FAMILY == "desktop"
