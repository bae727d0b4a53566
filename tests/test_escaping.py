"""Any value round-trips through the document, escaped exactly once; what XML cannot carry is
refused at load time, never emitted broken."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import SecretStr

from zengine import catalog
from zengine.errors import AccountDataError, ConfigError
from zengine.models import Account, Element, Identity
from zengine.pipeline import Outcome, render_for
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine.xmlio import error_document, serialize

xml_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40).filter(
    lambda s: catalog.xml_invalid_char(s) is None)
nasty = st.one_of(xml_text, st.sampled_from(["&", "<", ">", '"', "'", "&amp;", "]]>", "${X}",
                                             "Ωμέγα", "日本語", "\U0001f600", " lead", "trail "]))


@pytest.fixture(scope="module")
def runtime() -> object:
    rt = build_runtime(settings_from_mapping({}, environ={}), load_entrypoints=False,
                       plugins=plugin_list("zoiper", "urls"))
    rt.start()
    return rt


class OneAccount:
    def __init__(self, account: Account) -> None:
        self.account = account


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=nasty, password=nasty, caller=nasty, domain=nasty.filter(bool))
def test_account_values_round_trip(runtime: object, name: str, password: str, caller: str,
                                   domain: str) -> None:
    from zengine import hookimpl
    from zengine.runtime import Runtime

    assert isinstance(runtime, Runtime)
    account = Account(ident="i", sip_username="u", sip_password=SecretStr(password),
                      domain=domain, name=name or None, caller_id=caller or None)

    class Source:
        @hookimpl
        def zengine_load_accounts(self) -> list[Account]:
            return [account]

    runtime.hooks.pm.register(Source(), name="source")
    try:
        from zengine.models import ClientInfo, Version

        body = render_for(Identity("u", "t"), ClientInfo("mobile", Version(1, 14)), runtime,
                          Outcome())
    finally:
        runtime.hooks.pm.unregister(name="source")
    root = etree.fromstring(body)
    got = root.find("accounts/account")
    assert got is not None
    assert got.findtext("password") == password
    assert got.findtext("SIP_domain") == domain
    assert got.findtext("name") == (name or "u")
    if caller:
        assert got.findtext("SIP_callerId") == caller


@given(message=xml_text)
def test_error_document_escapes_message(message: str) -> None:
    root = etree.fromstring(error_document(message))
    assert root.tag == "error" and root.get("code") == "1"
    assert (root.text or "") == message


@given(message=st.text(max_size=40))
def test_error_document_is_well_formed_for_any_text(message: str) -> None:
    # Control characters, NUL, lone surrogates, U+FFFE: replaced, never a broken document.
    root = etree.fromstring(error_document(message))
    text = root.text or ""
    assert len(text) == len(message)
    assert all(c == o or c == "\ufffd" for c, o in zip(text, message, strict=True))


def test_escaped_once_not_twice() -> None:
    body = serialize(Element("a", children=[Element("b", "x&amp;y<z>\"'")]))
    assert b"<b>x&amp;amp;y&lt;z&gt;\"'</b>" in body


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_control_characters_refused_at_load_time(tmp_path: Path, char: str) -> None:
    with pytest.raises(ConfigError, match=f"U\\+{ord(char):04X}"):
        settings_from_mapping({"defaults": {"voicemail_check_extension": f"*9{char}"}},
                              environ={})
    with pytest.raises(ConfigError, match=r"XML 1\.0"):
        settings_from_mapping({"document": {"prov_name": f"x{char}"}}, environ={})


def test_control_character_from_a_backend_is_an_error_not_broken_xml() -> None:
    with pytest.raises(AccountDataError):
        serialize(Element("a", "bad\x01"))
