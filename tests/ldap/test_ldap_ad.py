"""The Active Directory preset against an AD-shaped tree in slapd (AD attribute names, OIDs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from tests.ldap import schema
from tests.ldap.conftest import ad_table
from tests.ldap.slapd import Slapd
from zengine.models import Abstain, Identity, Rejected
from zengine.runtime import Runtime
from zengine_ldap.auth import LdapBackend

pytestmark = pytest.mark.ldap
Build = Callable[[dict[str, Any]], Runtime]


@pytest.fixture
def ad(slapd: Slapd, ldap_runtime: Build) -> tuple[Runtime, LdapBackend]:
    runtime = ldap_runtime(ad_table(slapd))
    backend = runtime.state["ldap"]
    assert isinstance(backend, LdapBackend)
    return runtime, backend


def pw(name: str) -> SecretStr:
    return SecretStr(schema.AD_PASSWORDS[name])


@pytest.mark.parametrize("login", ["jdoe", "JDOE", "jdoe@corp.example"])
def test_sam_account_name_or_upn(ad: tuple[Runtime, LdapBackend], login: str) -> None:
    runtime, backend = ad
    identity = backend.authenticate(login, pw("jdoe"))
    assert isinstance(identity, Identity)
    assert identity.username == "jdoe"  # sAMAccountName, whichever form was typed
    assert identity.display_name == "John Doe"
    assert identity.groups == ("SIP Office",)
    assert identity.profile == "office"  # matched by group DN (AD spells it in capitals)
    (account,) = runtime.hooks.load_accounts(identity, runtime)
    assert (account.sip_username, account.sip_password.get_secret_value(), account.domain) == \
        ("8001", "jdoe-sip-secret", "pbx.corp.example")


def test_member_of_names_in_rule_order(ad: tuple[Runtime, LdapBackend]) -> None:
    _, backend = ad
    identity = backend.authenticate("mroe", pw("mroe"))
    assert isinstance(identity, Identity)
    assert set(identity.groups) == {"SIP Office", "SIP Mobile"}
    assert identity.profile == "mobile"


def test_disabled_account_is_refused(ad: tuple[Runtime, LdapBackend]) -> None:
    _, backend = ad
    # slapd would accept this bind; the preset's userAccountControl check must not.
    assert backend.authenticate("olduser", pw("olduser")) == Rejected("ldap", "account disabled")
    assert backend.authenticate("olduser", SecretStr("x")) == Rejected("ldap", "account disabled")
    assert backend.find_identity("olduser") is None


def test_wrong_password_unknown_user_and_injection(ad: tuple[Runtime, LdapBackend]) -> None:
    _, backend = ad
    assert backend.authenticate("jdoe", SecretStr("nope")) == Rejected("ldap", "wrong password")
    # Unknown: abstain, with the wrong-password cost (search + bind) already spent.
    assert backend.authenticate("nobody", SecretStr("nope")) == Abstain("ldap")
    for name in ("*", "jdoe)(sAMAccountName=*", "*)(userPrincipalName=*", "jdoe\x00"):
        assert backend.authenticate(name, pw("jdoe")) == Abstain("ldap")
    assert backend.authenticate("jdoe", SecretStr("")) == Rejected("ldap", "empty password")


def test_multi_valued_other_ip_phone(slapd: Slapd, ldap_runtime: Build) -> None:
    runtime = ldap_runtime(ad_table(slapd, attributes={"sip_password": "extensionAttribute1",
                                                       "sip_username": "otherIpPhone"}))
    identity = runtime.state["ldap"].authenticate("mroe", pw("mroe"))
    assert isinstance(identity, Identity)
    assert [a.sip_username for a in runtime.hooks.load_accounts(identity, runtime)] == ["8003"]


def test_find_identity_as_service_account(ad: tuple[Runtime, LdapBackend]) -> None:
    runtime, backend = ad
    identity = backend.find_identity("mroe@corp.example")
    assert identity is not None and identity.username == "mroe"
    assert [a.sip_username for a in runtime.hooks.load_accounts(identity, runtime)] == ["8002"]
