"""Directory entries to zengine values: identities, SIP accounts, groups and profiles.

Pure functions over :class:`Entry`; no network here, so the rules are easy to test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import structlog
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn
from pydantic import SecretStr

from zengine.models import Account, Identity
from zengine_ldap.settings import NAME as NAME  # defined with the settings, which need no ldap3
from zengine_ldap.settings import LdapSettings

#: Key of the user's DN in ``Identity.attributes``.
DN_ATTRIBUTE = "ldap_dn"
#: userAccountControl bit ACCOUNTDISABLE ([MS-ADTS] 2.2.16).
ACCOUNTDISABLE = 0x2
log = structlog.get_logger("zengine_ldap")


@dataclass(frozen=True)
class Entry:
    """A search result: DN and attribute values decoded as UTF-8, names lower-cased."""

    dn: str
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def all(self, attribute: str | None) -> tuple[str, ...]:
        return self.values.get(attribute.lower(), ()) if attribute else ()

    def first(self, attribute: str | None) -> str | None:
        values = self.all(attribute)
        return values[0] if values else None

    def __repr__(self) -> str:
        # Values may include a SIP password: only the DN is shown.
        return f"Entry(dn={self.dn!r})"


@dataclass(frozen=True)
class Group:
    dn: str | None
    name: str | None


def decode_entry(dn: str, raw: Mapping[str, Iterable[bytes]]) -> Entry:
    values: dict[str, tuple[str, ...]] = {}
    for attribute, raw_values in raw.items():
        decoded = []
        for value in raw_values:
            try:
                decoded.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                log.warning("ldap.undecodable_value", dn=dn, attribute=attribute)
        if decoded:
            values[attribute.lower()] = tuple(decoded)
    return Entry(dn, values)


def user_attributes(config: LdapSettings, with_accounts: bool) -> list[str]:
    """Attributes to request for a user entry."""
    attrs = config.attributes
    wanted = [attrs.username, attrs.display_name, attrs.member_of, attrs.account_control]
    if with_accounts and config.accounts_from == "attribute":
        wanted += account_attributes(config)
    return _unique(wanted)


def account_attributes(config: LdapSettings) -> list[str]:
    attrs = config.attributes
    return _unique([attrs.sip_username, attrs.sip_password, attrs.auth_username, attrs.name,
                    attrs.caller_id, attrs.domain, attrs.ident])


def _unique(names: Iterable[str | None]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        if name:
            seen.setdefault(name.lower(), name)
    return list(seen.values())


def is_disabled(entry: Entry, config: LdapSettings) -> bool:
    raw = entry.first(config.attributes.account_control)
    if raw is None:
        return False
    try:
        return bool(int(raw) & ACCOUNTDISABLE)
    except ValueError:
        log.warning("ldap.bad_account_control", dn=entry.dn)
        return True  # cannot tell: refuse rather than let a disabled account in


def canonical_username(entry: Entry, login: str, config: LdapSettings) -> str:
    """The directory's spelling of the username (``uid`` may be multi-valued)."""
    values = entry.all(config.attributes.username)
    for value in values:
        if value.casefold() == login.casefold():
            return value
    return values[0] if values else login


def _dn_key(dn: str) -> tuple[tuple[str, str], ...] | str:
    try:
        return tuple((attr.lower(), value.lower()) for attr, value, _sep in
                     parse_dn(dn, escape=False, strip=True))
    except LDAPException:
        return dn.lower()


def group_from_dn(dn: str) -> Group:
    try:
        name = parse_dn(dn, escape=False, strip=True)[0][1]
    except (LDAPException, IndexError):
        name = None
    return Group(dn, name)


def profile_for(groups: Iterable[Group], config: LdapSettings) -> str | None:
    """The first ``group_profiles`` rule, in configured order, that one of the groups meets."""
    groups = list(groups)
    dn_keys = {_dn_key(g.dn) for g in groups if g.dn}
    names = {g.name.casefold() for g in groups if g.name}
    for rule in config.group_profiles:
        if "=" in rule.group:
            if _dn_key(rule.group) in dn_keys:
                return rule.profile
        elif rule.group.casefold() in names:
            return rule.profile
    return None


def identity_for(entry: Entry, login: str, groups: list[Group],
                 config: LdapSettings) -> Identity:
    names = tuple(dict.fromkeys(g.name or g.dn or "" for g in groups if g.name or g.dn))
    return Identity(
        username=canonical_username(entry, login, config),
        backend=NAME,
        profile=profile_for(groups, config),
        display_name=entry.first(config.attributes.display_name),
        groups=names,
        attributes={DN_ATTRIBUTE: entry.dn},
    )


def _domain(entry: Entry, config: LdapSettings) -> str | None:
    return entry.first(config.attributes.domain) or config.domain


def accounts_from_attribute(entry: Entry, config: LdapSettings) -> list[Account]:
    """One account per value of the multi-valued SIP username attribute, one shared password."""
    attrs = config.attributes
    usernames = sorted(set(entry.all(attrs.sip_username)))
    if not usernames:
        return []
    password = entry.first(attrs.sip_password)
    domain = _domain(entry, config)
    if not password or not domain:
        # No empty SIP password is ever provisioned; the log names the gap, not a value.
        log.warning("ldap.account_incomplete", dn=entry.dn,
                    missing=attrs.sip_password if not password else "domain")
        return []
    name = entry.first(attrs.name)
    stable = entry.first(attrs.ident) if attrs.ident else None
    several = len(usernames) > 1
    return [
        _account(entry, sip_username, password, domain, config,
                 ident=f"{stable}:{sip_username}" if stable and several else stable,
                 name=f"{name} ({sip_username})" if name and several else name)
        for sip_username in usernames
    ]


def account_from_subentry(sub: Entry, owner: Entry, config: LdapSettings) -> Account | None:
    """One account per sub-search entry; name and caller id fall back to the owner's."""
    attrs = config.attributes
    sip_username = sub.first(attrs.sip_username)
    password = sub.first(attrs.sip_password)
    domain = sub.first(attrs.domain) or _domain(owner, config)
    if not sip_username or not password or not domain:
        log.warning("ldap.account_incomplete", dn=sub.dn,
                    missing=[label for label, value in (
                        (attrs.sip_username, sip_username), (attrs.sip_password, password),
                        ("domain", domain)) if not value])
        return None
    return _account(sub, sip_username, password, domain, config,
                    ident=sub.first(attrs.ident) if attrs.ident else None,
                    name=sub.first(attrs.name) or owner.first(attrs.name),
                    caller_id=sub.first(attrs.caller_id) or owner.first(attrs.caller_id))


def _account(entry: Entry, sip_username: str, password: str, domain: str,
             config: LdapSettings, *, ident: str | None, name: str | None,
             caller_id: str | None = None) -> Account:
    attrs = config.attributes
    return Account(
        ident=ident or f"{sip_username}@{domain}",
        sip_username=sip_username,
        sip_password=SecretStr(password),
        domain=domain,
        name=name,
        auth_username=entry.first(attrs.auth_username),
        caller_id=caller_id or entry.first(attrs.caller_id),
        source=NAME,
    )
