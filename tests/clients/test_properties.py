"""Property: for any catalogue-valid accounts and any client version, the document is
well-formed, structurally valid for the family and version served, holds no field newer than
that version, and parses back to the values the accounts resolved to."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import SecretStr

from zengine import catalog, hookimpl
from zengine.models import Account, Identity, ProvisionRequest, ResolvedAccount, Version
from zengine.pipeline import Outcome, detect_client, render_for
from zengine.profiles import resolve_accounts
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import check_structure, plugin_list
from zengine_zoiper import desktop_fields
from zengine_zoiper.mobile_transforms import element_path, item_name

# Fields the generated Account sets itself (or that carry host[:port], generated apart).
STRUCTURED = catalog.ACCOUNT_OWNED | {"SIP_domain", "SIP_outbound_proxy", "IAX2_host", "name",
                                      "SIP_auth_username", "SIP_callerId"}

text = st.text(st.characters(codec="utf-8"), max_size=12).filter(
    lambda s: catalog.xml_invalid_char(s) is None)
hostname = st.from_regex(r"[a-z][a-z0-9-]{0,8}(\.[a-z]{2,4}){1,2}", fullmatch=True)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.integers(1, 0xFFFF).map(lambda n: f"[2001:db8::{n:x}]")
endpoint = st.tuples(st.one_of(hostname, ipv4, ipv6), st.none() | st.integers(1, 65535))


def hostport(pair: tuple[str, int | None]) -> str:
    host, port = pair
    return host if port is None else f"{host}:{port}"


codecs = st.lists(
    st.tuples(st.sampled_from(catalog.CODECS), st.fixed_dictionaries({}, optional={
        "enabled": st.booleans(), "bps": st.integers(0, 2_000_000), "dtx": st.booleans(),
        "vbr": st.booleans()})),
    unique_by=lambda item: item[0].id, max_size=4,
).map(lambda items: [{"codec": c.name, **opts} for c, opts in items])
zrtp = st.fixed_dictionaries({"enabled": st.booleans()}, optional={
    spec.section: st.lists(st.sampled_from([name for name, _ in spec.ids]), unique=True)
    for spec in catalog.ZRTP_LISTS})


def strategy_for(field: catalog.Field) -> st.SearchStrategy[Any]:
    if field.type == "bool":
        return st.booleans()
    if field.type == "uint":
        return st.integers(0, 2**32 - 1)
    if field.type == "enum":
        return st.sampled_from(field.values)
    if field.type == "codecs":
        return codecs
    if field.type == "zrtp":
        return zrtp
    return text


overrides = st.fixed_dictionaries({}, optional={
    f.path: strategy_for(f) for f in catalog.ACCOUNT_FIELDS if f.path not in STRUCTURED})


@st.composite
def accounts(draw: st.DrawFn) -> list[tuple[Account, tuple[str, int | None]]]:
    result = []
    for index in range(draw(st.integers(1, 3))):
        domain = draw(endpoint)
        proxy = draw(st.none() | endpoint)
        result.append((Account(
            ident=f"acc-{index}", sip_username=draw(text.filter(bool)),
            sip_password=SecretStr(draw(text)), domain=hostport(domain),
            name=draw(st.none() | text.filter(bool)), auth_username=draw(st.none() | text),
            caller_id=draw(st.none() | text), outbound_proxy=hostport(proxy) if proxy else None,
            transport=draw(st.none() | st.sampled_from(["UDP", "TCP", "TLS"])),
            overrides=draw(overrides),
        ), domain))
    return result


version = st.one_of(
    st.sampled_from(["1", "1.0", " 1.14 ", "1.12.1", "2.0", "1.99", "1.3"]),
    st.sampled_from([f"1.{minor}" for minor in range(5, 15)]),
    st.builds("{}.{}".format, st.integers(1, 2), st.integers(0, 20)),
    st.builds("{}.{}.{}".format, st.just(1), st.integers(0, 20), st.integers(0, 9)),
)


class Holder:
    def __init__(self) -> None:
        self.accounts: list[Account] = []

    @hookimpl
    def zengine_load_accounts(self, identity: Identity, runtime: Runtime) -> list[Account]:
        return self.accounts


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Runtime, Holder]]:
    holder = Holder()
    runtime = build_runtime(settings_from_mapping({}, environ={}), load_entrypoints=False,
                            plugins=[*plugin_list("zoiper"), ("holder", holder)])
    runtime.start()
    yield runtime, holder
    runtime.stop()


def parsed(field: catalog.Field, node: etree._Element | None) -> Any:
    assert node is not None, field.path
    return catalog.coerce(field, node.text or "", "re-parse")


def parse_codecs(node: etree._Element | None,
                 flag: Mapping[str, bool]) -> list[tuple[Any, ...]]:
    assert node is not None
    return [(int(c.findtext("codec_id") or ""), int(c.findtext("priority") or ""),
             c.findtext("enabled") == "true", None if c.find("bps") is None
             else int(c.findtext("bps") or ""),
             *(flag.get(c.findtext(f) or "") for f in ("dtx", "vbr"))) for c in node]


def expect_codecs(value: tuple[catalog.CodecSetting, ...]) -> list[tuple[Any, ...]]:
    return [(s.codec.id, s.priority, s.enabled, s.bps, s.dtx, s.vbr) for s in value]


def parse_zrtp(node: etree._Element | None, items: Mapping[str, str]) -> catalog.ZrtpSetting:
    assert node is not None
    lists = []
    for section in node.iterchildren():
        if section.tag == "enabled":
            continue
        assert all(item.tag == items[section.tag] for item in section)
        lists.append((section.tag, tuple(catalog.ZrtpItem(
            item.findtext("name") or "", int(item.findtext("id") or ""),
            int(item.findtext("priority") or ""), item.findtext("selected") == "true")
            for item in section)))
    return catalog.ZrtpSetting(node.findtext("enabled") == "true", tuple(lists))


def check_mobile(account: etree._Element, resolved: ResolvedAccount, served: Version) -> None:
    items = {spec.section: item_name(spec, served) for spec in catalog.ZRTP_LISTS}
    for field in catalog.ACCOUNT_FIELDS:
        value = resolved.values.get(field.path)
        node = account.find(element_path(field, served))
        if (field.since is not None and served < field.since) or value is None or (
                field.type == "codecs" and not value):
            assert node is None and account.find(field.path) is None, field.path
        elif field.type == "codecs":
            assert parse_codecs(node, {"1": True, "0": False}) == expect_codecs(value)
        elif field.type == "zrtp":
            assert parse_zrtp(node, items) == value
        else:
            assert parsed(field, node) == value, field.path


def check_desktop(account: etree._Element, resolved: ResolvedAccount) -> None:
    for field in desktop_fields.account_fields():
        value = resolved.values.get(field.path)
        node = account.find(field.path)
        if value is None or (field.type == "codecs" and not value):
            assert node is None, field.path
        elif field.type == "codecs":
            assert parse_codecs(node, {"true": True, "false": False}) == expect_codecs(value)
        elif field.type == "zrtp":
            assert parse_zrtp(node, desktop_fields.ZRTP_ITEMS) == value
        else:
            assert node is not None, field.path
            back = {v: k for k, v in desktop_fields.VALUE_MAP.get(field.path, {}).items()}
            mobile_field = catalog.account_fields()[field.path]
            assert catalog.coerce(mobile_field, back.get(node.text or "", node.text or ""),
                                  "re-parse") == value, field.path


# Literal tables, not the builder's: the documented decisions, checked independently.
TRANSPORT = {"UDP": "0", "TCP": "1", "TLS": "2"}
DTMF = {"inband": "0", "rfc_2833": "1", "SIP_info_numeric": "2", "SIP_info_ascii": "3",
        "disabled": "4", "outband": "1"}


def check_legacy(account: etree._Element, resolved: ResolvedAccount,
                 domain: tuple[str, int | None]) -> None:
    v = resolved.values
    got = {node.tag: node.text or "" for node in account}
    iax = v["protocol"] == "IAX2"
    default_port = 4569 if iax else 5061 if v["SIP_transport_type"] == "TLS" else 5060
    assert got["username"] == v["username"] and got["password"] == v["password"]
    assert got["tech"] == ("1" if iax else "0")
    assert (got["host"], int(got["port"])) == (domain[0], domain[1] or default_port)
    assert got["transport_type"] == TRANSPORT["UDP" if iax else v["SIP_transport_type"]]
    # Unset fields are not sent ([document] send_defaults): the legacy builder's own defaults.
    style = v.get("IAX2_dtmf_style", "outband") if iax else v.get("SIP_dtmf_style", "rfc_2833")
    assert got["dtmf_style"] == DTMF[style]
    assert got["use_outbound_proxy"] == ("1" if not iax and resolved.account.outbound_proxy
                                         else "0")
    if got["use_outbound_proxy"] == "1":
        proxy = resolved.account.outbound_proxy or ""
        assert proxy.startswith(got["outbound_proxy"])
    for flag, key in (("register_on_startup", "register_on_startup"),
                      ("use_rport", "SIP_use_rport"), ("use_rport_media", "SIP_use_rport_media")):
        assert got[flag] == ("1" if v.get(key, flag != "use_rport_media") else "0")
    assert got["use_stun"] == ("0" if v.get("stun/use_stun") == "disabled" else "1")
    if v.get("stun/stun_port"):
        assert got["stun_port"] == str(v["stun/stun_port"])


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(generated=accounts(), raw_version=version,
       family=st.sampled_from(["auto", "mobile", "legacy", "desktop"]))
def test_any_account_any_version(world: tuple[Runtime, Holder],
                                 generated: list[tuple[Account, tuple[str, int | None]]],
                                 raw_version: str, family: str) -> None:
    runtime, holder = world
    holder.accounts = [account for account, _ in generated]
    params = {} if family == "auto" else {"format": family}
    request = ProvisionRequest(path="/id.php", params=MappingProxyType(params),
                               headers=MappingProxyType({}), client_addr="prop",
                               credentials=None, version_raw=raw_version)
    client = detect_client(request, runtime)
    identity = Identity(username="prop", backend="holder")
    resolved = resolve_accounts(holder.accounts, identity, runtime.settings)
    try:
        body = render_for(identity, client, runtime, Outcome())
    except Exception as exc:  # only "nothing expressible" (every account RTSP) is allowed
        assert type(exc).__name__ == "NoAccounts"
        assert client.family != "mobile"
        assert all(r.values["protocol"] == "RTSP" for r in resolved)
        return
    assert check_structure(body, client.family, client.version) == []
    root = etree.fromstring(body)
    elements = root.findall("accounts/account")
    if client.family == "mobile":
        assert root.findtext("prov_version") == str(client.version)
        assert len(elements) == len(resolved)
        for element, account in zip(elements, resolved, strict=True):
            check_mobile(element, account, client.version)
        return
    assert root.find("prov_version") is None
    kept = [(r, d) for r, (_, d) in zip(resolved, generated, strict=True)
            if r.values["protocol"] != "RTSP"]
    assert len(elements) == len(kept)
    for element, (account, domain) in zip(elements, kept, strict=True):
        if client.family == "desktop":
            check_desktop(element, account)
        else:
            check_legacy(element, account, domain)
