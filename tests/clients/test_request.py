"""How logins arrive: placeholders left in the URL, HTTP Basic in UTF-8 or ISO-8859-1, a raw
``+`` in the query. Parsing only; ``test_challenge.py`` covers the same over HTTP."""

from __future__ import annotations

import base64
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zengine.errors import BadRequest
from zengine.models import ProvisionRequest
from zengine.request import basic_credentials, build_request, is_placeholder
from zengine.settings import Settings, settings_from_mapping

LIMIT = 256


def parse(query: str, authorization: str | None = None,
          settings_: Settings | None = None) -> ProvisionRequest:
    headers = {"authorization": authorization} if authorization is not None else {}
    return build_request(path="/id.php", query=query.encode(), body=b"",
                         headers=MappingProxyType(headers), client_addr="test",
                         settings=settings_ or settings_from_mapping({}, environ={}))


def basic_header(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize("text", [
    "[user]", "[pass]", "[username]", "[password]", "[ USER ]", "{username}", "{password}",
    "$USERNAME", "$PASSWORD", "${USERNAME}", "$VERSION", "[version]", "{version}", "$V",
])
def test_placeholders_are_recognised(text: str) -> None:
    assert is_placeholder(text)


@pytest.mark.parametrize("text", ["[x7]", "{secret}", "$ecret", "alice", "[user", "user]",
                                  "[user][pass]", "$", "${}"])
def test_values_that_only_look_bracketed_are_values(text: str) -> None:
    assert not is_placeholder(text)


@pytest.mark.parametrize("query", [
    "user=[user]&pass=[pass]",
    "username=%5Buser%5D&password=%5Bpass%5D",
    "username={username}&password={password}",
    "u=$USERNAME&p=$PASSWORD",
    "user=&pass=",
    "",
])
def test_basic_header_wins_over_placeholders(query: str) -> None:
    request = parse(query, basic_header(b"alice:wonderland"))
    assert request.credentials is not None
    assert request.credentials.source == "basic"
    assert request.credentials.username == "alice"
    assert request.credentials.password.get_secret_value() == "wonderland"


def test_real_query_credentials_still_win_over_basic() -> None:
    request = parse("user=bob&pass=builder", basic_header(b"alice:wonderland"))
    assert request.credentials is not None
    assert (request.credentials.source, request.credentials.username) == ("query", "bob")


def test_placeholders_without_basic_are_missing_credentials() -> None:
    assert parse("user=[user]&pass=[pass]").credentials is None
    # A real username with a placeholder password: the password is what is missing.
    request = parse("user=alice&pass=[pass]")
    assert request.credentials is not None
    assert request.credentials.username == "alice"
    assert request.credentials.password.get_secret_value() == ""


def test_basic_in_utf8() -> None:
    credentials = basic_credentials(basic_header("jürgen:paßwort€".encode()), LIMIT)
    assert credentials.username == "jürgen"
    assert credentials.password.get_secret_value() == "paßwort€"


def test_basic_in_latin1_is_decoded_as_a_fallback() -> None:
    # RFC 7617 clients without charset support send ISO-8859-1: b"\xfc" is not UTF-8.
    credentials = basic_credentials(basic_header("jürgen:paßwort".encode("iso-8859-1")), LIMIT)
    assert credentials.username == "jürgen"
    assert credentials.password.get_secret_value() == "paßwort"


@pytest.mark.parametrize("header", [
    "Basic", "Basic ", "Bearer abc", "Basic !!!!", "Basic YWxpY2U=",  # no colon
    "Basic w7w=\u00ff", "Basic \u00e9\u00e9\u00e9\u00e9", "basic%20abc", "Digest x=y",
])
def test_malformed_basic_is_a_bad_request(header: str) -> None:
    with pytest.raises(BadRequest):
        basic_credentials(header, LIMIT)


def test_basic_scheme_is_case_insensitive_and_tab_separated() -> None:
    token = base64.b64encode(b"a:b").decode()
    assert basic_credentials(f"bAsIc\t{token}", LIMIT).username == "a"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=80))
def test_any_header_text_decodes_or_is_a_bad_request(header: str) -> None:
    # Headers reach us decoded as ISO-8859-1 (U+0000-U+00FF): nothing but BadRequest escapes.
    try:
        basic_credentials(header, LIMIT)
    except BadRequest:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_decoded_bytes_give_credentials_or_a_bad_request(raw: bytes) -> None:
    try:
        credentials = basic_credentials(basic_header(raw), LIMIT)
    except BadRequest:
        assert b":" not in raw
        return
    try:
        expected = raw.decode("utf-8")
    except UnicodeDecodeError:
        expected = raw.decode("iso-8859-1")
    assert f"{credentials.username}:{credentials.password.get_secret_value()}" == expected


def test_plus_is_a_space_by_default_and_a_plus_when_configured() -> None:
    request = parse("user=alice&pass=a+b%2Bc")
    assert request.credentials is not None
    assert request.credentials.password.get_secret_value() == "a b+c"
    raw_plus = settings_from_mapping({"request": {"plus_is_space": False}}, environ={})
    request = parse("user=alice&pass=a+b%2Bc", settings_=raw_plus)
    assert request.credentials is not None
    assert request.credentials.password.get_secret_value() == "a+b+c"
