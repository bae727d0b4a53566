"""The structural checkers catch what they are for, the desktop catalogue stays in step with
the mobile one, and ``host[:port]`` splitting for the legacy format."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.clients.conftest import GOLDEN
from zengine import catalog
from zengine.errors import AccountDataError
from zengine.models import Version
from zengine.testing import check_structure
from zengine_zoiper import desktop_fields, legacy

DESKTOP = Version(5, 0)


def _mutated(golden: str, xpath: str, change: str, value: str = "") -> bytes:
    root = etree.fromstring((GOLDEN / golden).read_bytes())
    found = root.xpath(xpath)
    assert isinstance(found, list) and found, xpath
    node = found[0]
    assert isinstance(node, etree._Element), xpath
    if change == "text":
        node.text = value
    elif change == "tag":
        node.tag = value
    elif change == "add":
        etree.SubElement(node, value).text = "x"
    else:
        parent = node.getparent()
        assert parent is not None, xpath
        parent.remove(node)
    return etree.tostring(root)


@pytest.mark.parametrize(("xpath", "change", "value", "problem"), [
    ("/options", "add", "prov_version", "options: children"),
    ("//account[1]/register_on_startup", "text", "true", "not in ('0', '1')"),
    ("//account[1]/transport_type", "text", "3", "not in ('0', '1', '2')"),
    ("//account[1]/port", "text", "50x", "not an unsigned integer"),
    ("//account[1]", "add", "SIP_domain", "children"),
    ("//account[1]/context", "remove", "", "children"),
    ("//codecs/codec[1]/name", "text", "g729", "do not match the catalogue"),
    ("//codecs/codec[1]/selected", "tag", "enabled", "children"),
])
def test_legacy_checker_finds(xpath: str, change: str, value: str, problem: str) -> None:
    assert check_structure((GOLDEN / "legacy/1.0.xml").read_bytes(), "legacy",
                           legacy.VERSION) == []
    problems = check_structure(_mutated("legacy/1.0.xml", xpath, change, value), "legacy",
                               legacy.VERSION)
    assert any(problem in p for p in problems), problems


def test_legacy_checker_wants_version_1_0() -> None:
    assert check_structure((GOLDEN / "legacy/1.0.xml").read_bytes(), "legacy",
                           Version(1, 14)) != []


@pytest.mark.parametrize(("xpath", "change", "value", "problem"), [
    ("//account[1]", "add", "balance_url", "not a desktop field"),
    ("//account[1]", "add", "SIP_use_reg_event", "not a desktop field"),
    ("//account[1]", "add", "enable_push_notifications", "not a desktop field"),
    ("/options", "add", "prov_version", "not a desktop field"),
    ("//account[1]/SIP_transport_type", "text", "TLS", "not in ('udp', 'tcp', 'tls')"),
    ("//account[1]/protocol", "text", "SIP", "not in ('sip'"),
    ("//account[1]/SIP_srtp_mode", "text", "SDES", "not in ('none', 'sdes')"),
    ("//account[1]/SIP_use_outbound_proxy", "text", "1", "not true/false"),
    ("//account[1]/codecs/codec[1]/codec_id", "text", "99", "unknown codec"),
    ("//account[1]/codecs/codec[1]/vbr", "text", "1", "not true/false"),
    ("//key_agreement_method[1]", "tag", "key_agreement", "should be <key_agreement_method>"),
    ("//key_agreement_method[1]/id", "text", "1", "not in"),
    ("//account[1]/stun", "add", "stun_server", "not a desktop field"),
    ("//contact_service[1]/type", "text", "google", "type 'google'"),
    ("//contact_service[1]/auth_type", "text", "digest", "not in ('none', 'basic', 'url')"),
    ("//contact_service[1]", "add", "root", "not a xml contact service option"),
    ("//contact_service[2]/use_start_tls", "text", "yes", "not true/false"),
    ("//contact_service[2]/limit", "text", "-1", "not a number"),
    ("//contact_service[2]/ident", "text", "ContactServiceLocal", "reserved"),
    ("//attribute_mapping[1]/property_type", "text", "nickname", "unknown property"),
    ("//contact_service[2]/host", "tag", "hostname", "required <host> missing"),
])
def test_desktop_checker_finds(xpath: str, change: str, value: str, problem: str) -> None:
    assert check_structure((GOLDEN / "desktop/query.xml").read_bytes(), "desktop",
                           DESKTOP) == []
    problems = check_structure(_mutated("desktop/query.xml", xpath, change, value), "desktop",
                               DESKTOP)
    assert any(problem in p for p in problems), problems


def test_every_mobile_field_has_a_desktop_decision() -> None:
    groups = (desktop_fields.SHARED, desktop_fields.MOBILE_ONLY, desktop_fields.NOT_DOCUMENTED)
    paths = [f.path for f in catalog.ACCOUNT_FIELDS]
    for path in paths:
        assert sum(path in group for group in groups) == 1, path
    assert set().union(*groups) == set(paths)


def test_desktop_fields_are_the_mobile_ones_in_desktop_spelling() -> None:
    fields = {f.path: f for f in desktop_fields.account_fields()}
    desktop_only = {f.path for f in catalog.DESKTOP_ONLY_FIELDS} - desktop_fields.DOCUMENT_LEVEL
    assert set(fields) == desktop_fields.SHARED | desktop_only
    placed = {p for paths in desktop_fields.DESKTOP_ONLY_AFTER.values() for p in paths}
    assert placed == desktop_only
    for path, field in fields.items():
        mobile = catalog.account_fields()[path]
        assert (field.type, field.default) == (mobile.type, mobile.default)
        assert field.since is None and field.old_names == ()
        for value in mobile.values if field.type == "enum" else ():
            text = desktop_fields.desktop_value(field, value)
            assert text in field.values or (path, value) == ("protocol", "RTSP"), (path, value)


def test_catalogue_zrtp_and_codec_ids_are_desktop_ids() -> None:
    for spec in catalog.ZRTP_LISTS:
        assert dict(spec.ids).items() <= desktop_fields.ZRTP_IDS[spec.section].items()
        assert spec.section in desktop_fields.ZRTP_ITEMS
    assert desktop_fields.ZRTP_ITEMS["key_agreement_methods"] == "key_agreement_method"
    assert {c.id for c in catalog.CODECS} <= desktop_fields.CODEC_IDS


@pytest.mark.parametrize(("text", "default", "expected"), [
    ("sip.example.com", 5060, ("sip.example.com", 5060)),
    ("sip.example.com:5070", 5060, ("sip.example.com", 5070)),
    (" sip.example.com:5070 ", 5060, ("sip.example.com", 5070)),
    ("192.0.2.1:5061", 5060, ("192.0.2.1", 5061)),
    ("[2001:db8::1]:5080", 5060, ("[2001:db8::1]", 5080)),
    ("[2001:db8::1]", 5061, ("[2001:db8::1]", 5061)),
    ("2001:db8::1", 5060, ("[2001:db8::1]", 5060)),
])
def test_split_hostport(text: str, default: int, expected: tuple[str, int]) -> None:
    assert legacy.split_hostport(text, default, "SIP_domain") == expected


@pytest.mark.parametrize("text", ["host:", "host:0", "host:65536", "host:5o60", "[::1",
                                  "[::1]5060", "[::1]:", "host:\uff15\uff10\uff16\uff10"])
def test_split_hostport_refuses(text: str) -> None:
    with pytest.raises(AccountDataError) as info:
        legacy.split_hostport(text, 5060, "SIP_domain")
    assert "SIP_domain" in str(info.value)
