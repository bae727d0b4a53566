"""LDAP operations on one borrowed connection: search, user bind, groups, account entries.

Every user-supplied value is escaped by ldap3 before it reaches a filter (RFC 4515,
``escape_filter_chars``) or a DN (RFC 4514, ``escape_rdn``).
"""

from __future__ import annotations

from typing import Literal

import structlog
from ldap3 import BASE, LEVEL, SUBTREE, Connection
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPPasswordIsMandatoryError,
    LDAPSASLPrepError,
    LDAPStartTLSError,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from zengine.errors import BackendUnavailable
from zengine.models import Account
from zengine_ldap.mapping import (
    Entry,
    Group,
    account_attributes,
    account_from_subentry,
    accounts_from_attribute,
    decode_entry,
    group_from_dn,
)
from zengine_ldap.pool import SERVER_TROUBLE, simple_bind
from zengine_ldap.settings import LdapSettings

log = structlog.get_logger("zengine_ldap")
SCOPES: dict[str, Literal["BASE", "LEVEL", "SUBTREE"]] = {
    "subtree": SUBTREE, "level": LEVEL, "base": BASE}
#: Result codes meaning "nothing there for this name": noSuchObject, invalidDNSyntax.
NOT_FOUND = frozenset({32, 34})
SIZE_LIMIT_EXCEEDED = 4


def fill_filter(template: str, *, username: str | None = None, dn: str | None = None) -> str:
    values = {k: escape_filter_chars(v) for k, v in (("username", username), ("dn", dn))
              if v is not None}
    return template.format(**values)


def fill_dn(template: str, *, username: str | None = None, dn: str | None = None) -> str:
    # ``dn`` came from the server and is a DN already; a login name is one RDN value.
    values: dict[str, str] = {}
    if username is not None:
        values["username"] = escape_rdn(username)
    if dn is not None:
        values["dn"] = dn
    return template.format(**values)


def search(conn: Connection, base: str, scope: Literal["subtree", "level", "base"],
           search_filter: str, attributes: list[str], *, size_limit: int = 0,
           time_limit: int = 0) -> list[Entry]:
    """Entries found; a missing base or malformed DN is an empty result, not an error."""
    conn.search(base, search_filter, search_scope=SCOPES[scope],
                attributes=attributes or ["1.1"], size_limit=size_limit,
                time_limit=time_limit)
    code = conn.result.get("result") if conn.result else None
    if code in SERVER_TROUBLE:
        raise LDAPCommunicationError(f"search answered {conn.result.get('description')}")
    if code in NOT_FOUND:
        return []
    if code not in (0, SIZE_LIMIT_EXCEEDED):
        # Usually configuration (service account rights, search base): the log says which.
        log.error("ldap.search_failed", base=base, result=conn.result.get("description"),
                  message=conn.result.get("message"))
        raise BackendUnavailable(f"ldap search under {base!r} failed: "
                                 f"{conn.result.get('description')}")
    # AD adds continuation references (searchResRef) for other partitions: not entries.
    return [decode_entry(item["dn"], item.get("raw_attributes") or {})
            for item in conn.response or () if item.get("type") == "searchResEntry"]


def read_entry(conn: Connection, dn: str, attributes: list[str]) -> Entry | None:
    found = search(conn, dn, "base", "(objectClass=*)", attributes)
    return found[0] if found else None


def user_bind(conn: Connection, dn: str, password: str, start_tls: bool) -> bool:
    """Bind as ``dn``; ``False`` for bad credentials (whatever the server's reason)."""
    if conn.closed:
        # ldap3 would silently reopen a closed connection without StartTLS before binding.
        raise LDAPCommunicationError("connection closed")
    if start_tls and not conn.server.ssl and not conn.tls_started:
        raise LDAPStartTLSError("refusing to send a password before StartTLS")
    try:
        return simple_bind(conn, dn, password)
    except (LDAPSASLPrepError, LDAPPasswordIsMandatoryError):
        # A password SASLprep (RFC 4013) refuses can match no stored password.
        return False


class Reader:
    """The reads that follow a login, on whichever connection the login used."""

    def __init__(self, config: LdapSettings) -> None:
        self.config = config

    def find_users(self, conn: Connection, username: str, attributes: list[str]) -> list[Entry]:
        """Search-mode lookup; at most two entries, enough to tell one from several."""
        # Settings validation guarantees both in search mode and when read_user calls this.
        config = self.config
        return search(conn, config.search_base or "", config.search_scope,
                      fill_filter(config.search_filter or "", username=username), attributes,
                      size_limit=2, time_limit=config.receive_timeout)

    def read_user(self, conn: Connection, dn: str, username: str,
                  attributes: list[str]) -> Entry | None:
        """Direct mode: the entry at ``dn``, or the one the search filter finds when a
        search base is set (AD accepts ``user@domain`` as bind name, which is no DN)."""
        config = self.config
        if config.search_base and config.search_filter:
            found = self.find_users(conn, username, attributes)
            return found[0] if len(found) == 1 else None
        return read_entry(conn, dn, attributes)

    def groups(self, conn: Connection, entry: Entry, username: str) -> list[Group]:
        config = self.config
        groups = [group_from_dn(dn) for dn in entry.all(config.attributes.member_of)]
        if config.group_search_base and config.group_search_filter:
            name_attribute = config.group_name_attribute
            for found in search(conn, config.group_search_base, "subtree",
                                fill_filter(config.group_search_filter, username=username,
                                            dn=entry.dn),
                                [name_attribute], time_limit=config.receive_timeout):
                groups.append(Group(found.dn, found.first(name_attribute)))
        return groups

    def accounts(self, conn: Connection, entry: Entry, username: str) -> list[Account]:
        config = self.config
        if config.accounts_from == "attribute":
            return accounts_from_attribute(entry, config)
        if config.accounts_from == "subsearch":
            base = fill_dn(config.accounts_base or "", username=username, dn=entry.dn)
            found = search(conn, base, config.accounts_scope,
                           fill_filter(config.accounts_filter, username=username, dn=entry.dn),
                           account_attributes(config), time_limit=config.receive_timeout)
            accounts = [account_from_subentry(sub, entry, config) for sub in found]
            return sorted((a for a in accounts if a is not None), key=lambda a: a.sip_username)
        return []
