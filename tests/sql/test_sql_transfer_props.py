"""Property tests for the import parsers: any input is users or a clear import error, and what
export writes, import reads back unchanged."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zengine_sql.transfer import CSV_COLUMNS, ImportFailed, export_csv, parse_csv, parse_json

# Text a CSV/JSON file can carry: no NUL, no lone surrogates.
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
               max_size=40)
NAME = TEXT.filter(lambda s: s.strip() != "" and len(s) <= 255)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_csv_is_users_or_an_import_error(text: str) -> None:
    try:
        parse_csv(text, "f.csv")
    except ImportFailed as exc:
        assert str(exc).startswith("f.csv")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["username", "accounts", "enabled",
                                                       "ident", "x", "overrides"]), inner,
                                      max_size=4), max_leaves=12))
def test_any_json_is_users_or_an_import_error(value: object) -> None:
    try:
        parse_json(json.dumps(value), "f.json")
    except ImportFailed as exc:
        assert str(exc).startswith("f.json")


@settings(max_examples=100, deadline=None)
@given(username=NAME, display=TEXT, sip_password=NAME, caller_id=TEXT)
def test_csv_export_reads_back(username: str, display: str, sip_password: str,
                               caller_id: str) -> None:
    doc: dict[str, Any] = {
        "username": username, "tenant": None, "display_name": display or None,
        "profile": None, "enabled": True, "password_hash": None, "overrides": {},
        "accounts": [{"ident": "a1", "sip_username": "u", "domain": "d.example",
                      "sip_password": sip_password, "name": None, "auth_username": None,
                      "caller_id": caller_id or None, "outbound_proxy": None,
                      "transport": None, "profile": None, "enabled": True,
                      "overrides": {"stun": {"use_stun": "custom"}}}]}
    out = io.StringIO()
    export_csv(iter([doc]), out)
    assert out.getvalue().splitlines()[0].split(",")[0] == CSV_COLUMNS[0]
    [user] = parse_csv(out.getvalue(), "x.csv")
    assert (user.username, user.display_name) == (username, display or None)
    [account] = user.accounts
    assert account.sip_password == sip_password
    assert account.optional["caller_id"] == (caller_id or None)
    assert account.overrides == {"stun": {"use_stun": "custom"}}
