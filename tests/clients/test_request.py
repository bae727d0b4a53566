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


# The separators and escapes parse_qsl treats specially, among letters and non-ASCII text.
_QUERY_CHARS = st.sampled_from(list("&&&===;;ab+% \tuvé€\U0001f600\x00")) | st.characters()
_QUERIES = st.text(_QUERY_CHARS, max_size=60) | st.lists(
    st.text(_QUERY_CHARS, max_size=6), min_size=25, max_size=40).map("&".join)


def _qsl(text: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    from zengine.request import MAX_FIELDS

    return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict",
                     max_num_fields=MAX_FIELDS)


@settings(max_examples=1500, deadline=None)
@given(text=_QUERIES)
def test_a_plain_query_splits_into_exactly_parse_qsls_pairs(text: str) -> None:
    from zengine.request import _plain_pairs

    text = text.replace("%", "").replace("+", "")  # what the shortcut is taken for
    try:
        expected: list[tuple[str, str]] | type[ValueError] = _qsl(text)
    except ValueError:
        expected = ValueError
    try:
        got: list[tuple[str, str]] | type[ValueError] = _plain_pairs(text)
    except ValueError:
        got = ValueError
    assert got == expected


_LIMITED = {limit: settings_from_mapping({"server": {"max_param_length": limit}}, environ={})
            for limit in (16, LIMIT)}


@settings(max_examples=800, deadline=None)
@given(query=_QUERIES.map(lambda text: text.encode("utf-8", "surrogatepass"))
       | st.binary(max_size=40), plus_is_space=st.booleans(),
       limit=st.sampled_from([16, LIMIT]))
def test_parse_params_is_what_it_was_with_parse_qsl_alone(query: bytes, plus_is_space: bool,
                                                          limit: int) -> None:
    # Any query, shortcut or not: the same parameters or the same refusal as when every
    # query went through parse_qsl.
    from zengine.request import parse_params

    settings_ = _LIMITED[limit]

    def outcome() -> dict[str, str] | str:
        into: dict[str, str] = {}
        try:
            parse_params(query, settings_, into, plus_is_space=plus_is_space)
        except BadRequest as exc:
            return f"{exc.detail} | {exc.public_message}"
        return into

    now = outcome()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("zengine.request._plain_pairs", _qsl)
        assert outcome() == now
