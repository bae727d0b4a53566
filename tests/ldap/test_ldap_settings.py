"""``[plugins.ldap]`` validation, secrets handling, escaping properties, pure mapping rules.

No slapd needed except where a login proves a secret reached the bind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from ldap3.operation.search import parse_filter
from ldap3.protocol.convert import prepare_filter_for_sending
from pydantic import SecretStr

import zengine_ldap
from tests.ldap import schema
from tests.ldap.conftest import PROFILES, search_table
from tests.ldap.slapd import Slapd
from zengine.errors import ConfigError
from zengine.models import Identity
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine_ldap.auth import Handoff
from zengine_ldap.directory import fill_dn, fill_filter
from zengine_ldap.mapping import Entry, Group, is_disabled, profile_for
from zengine_ldap.settings import LdapSettings

Build = Callable[[dict[str, Any]], Runtime]
SECRET = "Sup3r-Secret-Service-PW"
MINIMAL: dict[str, Any] = {
    "servers": ["ldaps://ldap.example.com"],
    "search_base": "dc=example,dc=com",
    "service_dn": "cn=zengine,dc=example,dc=com",
    "service_password": SECRET,
    "attributes": {"sip_password": "sipPassword"},
    "domain": "sip.example.com",
}


def config_error(table: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        settings = settings_from_mapping({"profiles": PROFILES, "plugins": {"ldap": table}},
                                         environ=environ or {})
        runtime = build_runtime(settings, load_entrypoints=False,
                                plugins=[("ldap", zengine_ldap)])
        runtime.start()
    message = str(caught.value)
    assert SECRET not in message  # never, whatever went wrong
    return message


@pytest.mark.parametrize(("change", "expected"), [
    ({"servers": ["ldap://ldap.example.com"]}, "key 'servers'.*clear text"),
    ({"servers": ["http://ldap.example.com"]}, "key 'servers'.*ldaps://host"),
    ({"servers": ["ldaps://ldap.example.com/dc=x?uid"]}, "key 'servers'.*only scheme"),
    ({"sevrers": ["ldaps://x"]}, "unknown key 'sevrers'"),
    ({"preset": "novell"}, "key 'preset'"),
    ({"bind_mode": "direct"}, "key 'user_dn_template'.*required"),
    ({"bind_mode": "direct", "user_dn_template": "uid={user},dc=x"},
     r"key 'user_dn_template'.*unknown placeholder \{user\}"),
    ({"bind_mode": "direct", "user_dn_template": "cn=fixed,dc=x"}, "must contain {username}"),
    ({"search_filter": "(uid={username}"}, "key 'search_filter'.*not a valid LDAP filter"),
    ({"search_filter": "(uid=fixed)"}, "key 'search_filter'.*must contain {username}"),
    ({"search_base": None}, "key 'search_base'.*required"),
    ({"service_password": None}, "key 'service_dn'.*needs service_password"),
    ({"service_dn": None}, "key 'service_dn'.*required with service_password"),
    ({"service_password_file": "/x"}, "not both"),
    ({"attributes": {}}, "key 'attributes'.*sip_password"),
    ({"domain": None}, "key 'domain'.*required"),
    ({"accounts_from": "subsearch"}, "key 'accounts_base'.*required"),
    ({"accounts_from": "subsearch", "accounts_base": "{dn}", "accounts_filter": "(o={x})"},
     "key 'accounts_filter'.*unknown placeholder"),
    ({"group_profiles": [{"group": "staff", "profile": "office"}]},
     "key 'group_profiles'.*no group can ever match"),
    ({"group_search_base": "ou=groups,dc=example,dc=com",
      "group_profiles": [{"group": "staff", "profile": "nope"}]},
     r"unknown profiles \['nope'\]"),
    ({"receive_timeout": 1.5}, "key 'receive_timeout'"),
    ({"ca_file": "/does/not/exist.pem"}, "ca_file.*cannot load"),
])
def test_bad_settings_name_the_key_and_never_the_secret(change: dict[str, Any],
                                                        expected: str) -> None:
    table = {**MINIMAL, **change}
    table = {k: v for k, v in table.items() if v is not None}
    assert re.search(expected, config_error(table)), config_error(table)


def test_absent_table_is_inert_and_an_incomplete_one_is_an_error() -> None:
    assert not LdapSettings().enabled
    assert "key 'servers'" in config_error({"search_base": "dc=x"})


def test_presets_fill_only_what_is_not_set() -> None:
    ad = LdapSettings.model_validate({**MINIMAL, "preset": "active_directory",
                                      "attributes": {"sip_password": "x", "member_of": None}})
    assert ad.attributes.username == "sAMAccountName"
    assert ad.attributes.member_of is None  # explicitly unset beats the preset
    assert ad.attributes.account_control == "userAccountControl"
    assert "userPrincipalName={username}" in (ad.search_filter or "")
    openldap = LdapSettings.model_validate({**MINIMAL, "search_filter": "(cn={username})"})
    assert openldap.search_filter == "(cn={username})"
    assert openldap.attributes.username == "uid"


def test_secrets_are_masked_in_reprs() -> None:
    config = LdapSettings.model_validate(MINIMAL)
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert SECRET not in repr(Entry("uid=a", {"sippassword": (SECRET,)}))


def test_service_password_from_environment(slapd: Slapd, ldap_runtime: Build) -> None:
    table = search_table(slapd)
    del table["service_password"]
    settings = settings_from_mapping(
        {"profiles": PROFILES, "plugins": {"ldap": table}},
        environ={"ZENGINE_PLUGINS__LDAP__SERVICE_PASSWORD": schema.SERVICE_PASSWORD})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("ldap", zengine_ldap)])
    runtime.start()
    try:
        result = runtime.state["ldap"].authenticate("alice", SecretStr(schema.PASSWORDS["alice"]))
        assert isinstance(result, Identity)
    finally:
        runtime.stop()


def test_service_password_from_file(slapd: Slapd, ldap_runtime: Build, tmp_path: Path) -> None:
    secret_file = tmp_path / "ldap-service-password"
    secret_file.write_text(schema.SERVICE_PASSWORD + "\n", encoding="utf-8")
    table = search_table(slapd, service_password_file=str(secret_file))
    del table["service_password"]
    runtime = ldap_runtime(table)
    result = runtime.state["ldap"].authenticate("alice", SecretStr(schema.PASSWORDS["alice"]))
    assert isinstance(result, Identity)


@given(st.text(min_size=1, max_size=40))
@example("*)(uid=*")
@example("\\2a")
@example("\x00")
@example("a\\")
def test_filter_escaping_keeps_the_value_one_assertion(username: str) -> None:
    template = "(&(objectClass=inetOrgPerson)(uid={username}))"
    root = parse_filter(  # type: ignore[no-untyped-call]
        fill_filter(template, username=username), None, False, False, None, False)
    (conjunction,) = root.elements
    leaves = conjunction.elements
    assert [leaf.assertion["attr"] for leaf in leaves] == ["objectClass", "uid"]
    # The bytes ldap3 puts on the wire for the value. (Not unescape_filter_chars: it replaces
    # escape by escape, so "\\5c2a" would come back as "*".) ldap3 strips whitespace around
    # assertion values; LDAP matching ignores it anyway.
    sent = prepare_filter_for_sending(leaves[1].assertion["value"])  # type: ignore[no-untyped-call]
    assert sent == username.strip().encode("utf-8")


# Blank names never reach escaping (the backend abstains first), and ldap3's escape_rdn
# gets exactly one of them wrong: " " becomes "\\\\ " (an escaped backslash and a bare space).
@given(st.text(min_size=1, max_size=40).filter(str.strip))
@example(" a ")
@example("#a")
@example("a\\ ")
@example("a,b+c=d")
@example('"<>;')
@example("\x00")
def test_dn_escaping_leaves_no_bare_separator(username: str) -> None:
    rdn_value = fill_dn("{username}", username=username)
    # Split into escaped pairs ("\\x") and bare characters; no bare character may be DN syntax.
    tokens = re.findall(r"\\.|.", rdn_value, flags=re.DOTALL)
    bare = [t for t in tokens if len(t) == 1]
    assert not set(bare) & set(',+"\\<>;=')
    assert tokens[0] not in ("#", " ") and tokens[-1] != " "
    assert "".join(t[-1] for t in tokens) == username


def test_group_rules_match_dns_structurally_and_names_case_insensitively() -> None:
    config = LdapSettings.model_validate({**MINIMAL, "attributes": {
        "sip_password": "x", "member_of": "memberOf"}, "group_profiles": [
        {"group": "CN=Phones, OU=Groups, DC=Example, DC=Com", "profile": "office"},
        {"group": "Mobile", "profile": "mobile"}]})
    assert profile_for([Group("cn=phones,ou=groups,dc=example,dc=com", "phones")],
                       config) == "office"
    assert profile_for([Group(None, "MOBILE")], config) == "mobile"
    assert profile_for([Group("cn=Mobile,dc=x", "Mobile"),
                        Group("cn=phones,ou=groups,dc=example,dc=com", "phones")],
                       config) == "office"  # rule order, not group order
    assert profile_for([Group("cn=other,dc=x", "other")], config) is None


def test_unreadable_account_control_refuses() -> None:
    config = LdapSettings.model_validate({**MINIMAL, "preset": "active_directory"})
    assert is_disabled(Entry("cn=a", {"useraccountcontrol": ("514",)}), config)
    assert not is_disabled(Entry("cn=a", {"useraccountcontrol": ("512",)}), config)
    assert is_disabled(Entry("cn=a", {"useraccountcontrol": ("garbage",)}), config)
    assert not is_disabled(Entry("cn=a"), config)


def test_handoff_is_taken_once_and_expires() -> None:
    handoff = Handoff(ttl=60, size=2)
    handoff.put("UID=A,dc=x", [])
    assert handoff.take("uid=a,dc=x") == []
    assert handoff.take("uid=a,dc=x") is None
    for name in ("a", "b", "c"):
        handoff.put(f"uid={name}", [])
    assert handoff.take("uid=a") is None  # evicted: at most two kept
    expired = Handoff(ttl=-1)
    expired.put("uid=a", [])
    assert expired.take("uid=a") is None
