"""Logins and accounts against the real slapd: both bind modes, mapping, injection attempts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

import zengine_ldap
from tests.ldap import schema
from tests.ldap.conftest import direct_table, search_table
from tests.ldap.slapd import Slapd
from zengine.models import Abstain, Credentials, Identity, ProvisionRequest, Rejected
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping

pytestmark = pytest.mark.ldap
Build = Callable[[dict[str, Any]], Runtime]
REQUEST = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)


def login(runtime: Runtime, username: str, password: str) -> Identity | Rejected | Abstain | None:
    credentials = Credentials(username=username, password=SecretStr(password))
    return runtime.hooks.authenticate(credentials, REQUEST, runtime, ("ldap",))


def accounts(runtime: Runtime, identity: Identity) -> list[tuple[str, str, str, str | None]]:
    return [(a.sip_username, a.sip_password.get_secret_value(), a.domain, a.name)
            for a in runtime.hooks.load_accounts(identity, runtime)]


@pytest.fixture(params=["search", "direct"])
def mode_runtime(request: pytest.FixtureRequest, slapd: Slapd, ldap_runtime: Build) -> Runtime:
    table = search_table(slapd) if request.param == "search" else direct_table(slapd)
    return ldap_runtime(table)


def test_login_maps_identity_profile_and_account(mode_runtime: Runtime) -> None:
    identity = login(mode_runtime, "alice", schema.PASSWORDS["alice"])
    assert isinstance(identity, Identity)
    assert identity.username == "alice"
    assert identity.backend == "ldap"
    assert identity.display_name == "Alice Example"
    assert identity.profile == "office"
    assert identity.groups == ("sip-office",)
    assert identity.attributes == {"ldap_dn": f"uid=alice,ou=people,{schema.BASE}"}
    (account,) = mode_runtime.hooks.load_accounts(identity, mode_runtime)
    assert account.sip_username == "1001"
    assert account.sip_password.get_secret_value() == "alice-sip-secret"
    assert account.domain == "sip.example.com"
    assert account.ident == "1001@sip.example.com"
    assert account.name == account.caller_id == "Alice Example"
    assert account.source == "ldap"


@pytest.mark.parametrize("spelling", ["ALICE", " alice", "alice "])
def test_login_matching_follows_ldap_rules_and_gives_directory_spelling(
        mode_runtime: Runtime, spelling: str) -> None:
    # caseIgnoreMatch ignores case and insignificant spaces (RFC 4518): other plugins (SQL
    # accounts) key on Identity.username, so it is the directory's spelling, not the login's.
    identity = login(mode_runtime, spelling, schema.PASSWORDS["alice"])
    assert isinstance(identity, Identity)
    assert identity.username == "alice"


def test_several_accounts_from_multivalued_attribute_and_first_group_rule(
        mode_runtime: Runtime) -> None:
    identity = login(mode_runtime, "bob", schema.PASSWORDS["bob"])
    assert isinstance(identity, Identity)
    # Bob is in both groups; the rule listed first ("sip-mobile") wins.
    assert set(identity.groups) == {"sip-office", "sip-mobile"}
    assert identity.profile == "mobile"
    assert accounts(mode_runtime, identity) == [
        ("2001", "bob-sip-secret", "sip.example.com", "Bob Builder (2001)"),
        ("2002", "bob-sip-secret", "sip.example.com", "Bob Builder (2002)"),
    ]


def test_missing_sip_password_gives_no_account_and_logs_no_secret(
        mode_runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    identity = login(mode_runtime, "carol", schema.PASSWORDS["carol"])
    assert isinstance(identity, Identity)
    assert identity.profile is None
    assert accounts(mode_runtime, identity) == []
    output = capsys.readouterr()
    assert "ldap.account_incomplete" in output.out + output.err
    assert schema.PASSWORDS["carol"] not in output.out + output.err


def test_wrong_password_is_rejected(mode_runtime: Runtime) -> None:
    assert login(mode_runtime, "alice", "not-the-password") == Rejected("ldap", "wrong password")


def test_unknown_user_abstains(mode_runtime: Runtime) -> None:
    # Abstain after spending the wrong-password cost: the core adds no argon2 on top.
    assert login(mode_runtime, "nobody", "whatever") == Abstain("ldap")


def test_empty_password_never_authenticates(mode_runtime: Runtime) -> None:
    assert login(mode_runtime, "alice", "") == Rejected("ldap", "empty password")
    assert login(mode_runtime, "nobody", "") == Rejected("ldap", "empty password")


def test_special_characters_are_escaped_in_dn_and_filter(mode_runtime: Runtime) -> None:
    # uid "smith, j*": ',' must be DN-escaped (direct) and '*' filter-escaped (search).
    identity = login(mode_runtime, "smith, j*", schema.PASSWORDS["smith, j*"])
    assert isinstance(identity, Identity)
    assert identity.username == "smith, j*"
    # slapd spells the escaped comma as hex (search result); the template as "\\," (direct).
    assert identity.attributes["ldap_dn"].replace("\\2C", "\\,") == \
        f"uid=smith\\, j*,ou=people,{schema.BASE}"
    assert [a.sip_username for a in mode_runtime.hooks.load_accounts(identity, mode_runtime)] \
        == ["5001"]


def test_non_ascii_username_and_password(mode_runtime: Runtime) -> None:
    identity = login(mode_runtime, "jörg", schema.PASSWORDS["jörg"])
    assert isinstance(identity, Identity)
    assert identity.display_name == "Jörg Müller"
    assert login(mode_runtime, "jörg", "jorg-passworter") == Rejected("ldap", "wrong password")


@pytest.mark.parametrize("username", [
    "*", "a*", "*)(uid=*", "alice)(uid=*", "alice)(|(uid=*", "*)(|(objectClass=*",
    "alice\\", "\\2a", "al\\2aice", "alice\x00", "\x00", "alice,ou=people", "uid=alice",
    "#alice", "alice)", "(", ")", " ", "\t\n", "\x85",
])
def test_injection_attempts_match_nobody(mode_runtime: Runtime, username: str) -> None:
    # A real user's password with a name that only matches if escaping fails.
    assert login(mode_runtime, username, schema.PASSWORDS["alice"]) in (None, Abstain("ldap"))


def test_several_matches_is_a_failed_login_not_a_crash(slapd: Slapd, ldap_runtime: Build) -> None:
    runtime = ldap_runtime(search_table(slapd))
    assert login(runtime, "twin", schema.PASSWORDS["twin"]) == \
        Rejected("ldap", "username matches several directory entries")


def test_subsearch_accounts(slapd: Slapd, ldap_runtime: Build) -> None:
    table = search_table(slapd, accounts_from="subsearch", accounts_base=f"ou=sip,{schema.BASE}",
                         accounts_filter="(&(objectClass=sipAccount)(owner={dn}))",
                         attributes={"sip_password": "sipPassword", "ident": "cn"})
    runtime = ldap_runtime(table)
    identity = login(runtime, "dave", schema.PASSWORDS["dave"])
    assert isinstance(identity, Identity)
    assert identity.profile == "mobile"
    found = runtime.hooks.load_accounts(identity, runtime)
    assert [(a.ident, a.sip_username, a.sip_password.get_secret_value(), a.name)
            for a in found] == [(n, n, f"dave-sip-{n}", f"Dave line {n}")
                                for n in ("4001", "4002", "4003")]


def test_accounts_from_none_leaves_accounts_to_other_plugins(slapd: Slapd,
                                                             ldap_runtime: Build) -> None:
    table = search_table(slapd, accounts_from="none")
    del table["domain"]
    runtime = ldap_runtime(table)
    identity = login(runtime, "alice", schema.PASSWORDS["alice"])
    assert isinstance(identity, Identity)
    assert runtime.hooks.load_accounts(identity, runtime) == []


def test_find_identity_and_accounts_without_password(slapd: Slapd, ldap_runtime: Build) -> None:
    runtime = ldap_runtime(search_table(slapd))
    identity = runtime.hooks.find_identity("bob", runtime, ("ldap",))
    assert identity is not None
    assert identity.username == "bob"
    assert identity.profile == "mobile"
    assert len(runtime.hooks.load_accounts(identity, runtime)) == 2
    assert runtime.hooks.find_identity("nobody", runtime, ("ldap",)) is None
    assert runtime.hooks.find_identity("*", runtime, ("ldap",)) is None


def test_find_identity_in_direct_mode_reads_anonymously(slapd: Slapd,
                                                        ldap_runtime: Build) -> None:
    runtime = ldap_runtime(direct_table(slapd))
    identity = runtime.hooks.find_identity("alice", runtime, ("ldap",))
    assert identity is not None
    assert identity.profile == "office"
    # Anonymous readers may not see sipPassword (slapd ACL): no account, never an empty one.
    assert runtime.hooks.load_accounts(identity, runtime) == []


def test_load_accounts_rereads_when_nothing_was_handed_over(slapd: Slapd,
                                                            ldap_runtime: Build) -> None:
    runtime = ldap_runtime(search_table(slapd))
    identity = login(runtime, "alice", schema.PASSWORDS["alice"])
    assert isinstance(identity, Identity)
    first = accounts(runtime, identity)
    # The second call finds nothing handed over and reads as the service account.
    assert accounts(runtime, identity) == first == [
        ("1001", "alice-sip-secret", "sip.example.com", "Alice Example")]


def test_identities_of_other_backends_get_no_ldap_accounts(slapd: Slapd,
                                                           ldap_runtime: Build) -> None:
    runtime = ldap_runtime(search_table(slapd))
    other = Identity(username="alice", backend="static")
    assert runtime.hooks.load_accounts(other, runtime) == []


def test_unconfigured_plugin_is_inert() -> None:
    runtime = build_runtime(settings_from_mapping({}, environ={}), load_entrypoints=False,
                            plugins=[("ldap", zengine_ldap)])
    runtime.start()
    try:
        assert login(runtime, "alice", schema.PASSWORDS["alice"]) is None
        assert runtime.hooks.find_identity("alice", runtime, ("ldap",)) is None
        assert runtime.hooks.load_accounts(
            Identity(username="alice", backend="ldap", attributes={"ldap_dn": "x"}),
            runtime) == []
    finally:
        runtime.stop()


def test_every_bind_is_announced_as_a_verification_and_cache_hits_are_not(
        mode_runtime: Runtime) -> None:
    """The flood limit's seam (zengine_login_verification): a bind is the directory's slow
    check; a verified-login cache hit (search mode) spends none."""
    from zengine.verifying import login_in_progress

    def announced(username: str, password: str) -> int:
        calls: list[int] = []
        with login_in_progress(lambda: calls.append(1)):
            login(mode_runtime, username, password)
        return len(calls)

    right = schema.PASSWORDS["alice"]
    assert announced("nobody-at-all", right) == 1
    assert announced("alice", right + "-wrong") == 1
    assert announced("alice", right) == 1
    direct = mode_runtime.config("ldap", zengine_ldap.LdapSettings).bind_mode == "direct"
    assert announced("alice", right) == (1 if direct else 0)
