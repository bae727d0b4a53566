"""The ``[plugins.ldap]`` table: one pydantic model, with presets for OpenLDAP and AD.

A preset only fills keys the operator left out, so every preset value can be overridden.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from zengine.settings import SecretFile
from zengine_ldap.contacts import LdapContactService

T = TypeVar("T")
#: The plugin's name: ``[plugins.ldap]``, the backend in ``[auth] chain``, ``runtime.state``.
NAME = "ldap"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeMap(_Model):
    """Directory attribute names (case-insensitive, as LDAP compares them)."""

    #: The directory username; becomes ``Identity.username`` (what SQL may key accounts on).
    username: str | None = None
    display_name: str | None = "displayName"
    #: One account per value (``accounts_from = "attribute"``), or per sub-entry.
    sip_username: str | None = "telephoneNumber"
    sip_password: str | None = None
    auth_username: str | None = None
    name: str | None = "displayName"
    caller_id: str | None = "displayName"
    #: Per-account SIP domain; ``domain`` is the fallback.
    domain: str | None = None
    #: Stable account ident (e.g. ``entryUUID`` of sub-entries); default ``<sip user>@<domain>``.
    ident: str | None = None
    #: Group DNs stored on the user (AD ``memberOf``, OpenLDAP memberof overlay).
    member_of: str | None = None
    #: AD ``userAccountControl``: the ACCOUNTDISABLE bit (0x2) refuses the login.
    account_control: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # TOML has no null: ``caller_id = ""`` switches off a default or a preset's value.
        return None if value == "" else value


class GroupProfile(_Model):
    """A group, by DN (contains ``=``) or by name, and the profile its members get."""

    group: str = Field(min_length=1)
    profile: str = Field(min_length=1)


PRESETS: dict[str, dict[str, Any]] = {
    "openldap": {
        "search_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
        "group_search_filter": "(&(objectClass=groupOfNames)(member={dn}))",
        "attributes": {"username": "uid"},
    },
    "active_directory": {
        # Either login form works: the pre-Windows-2000 name or the UPN (user@domain).
        "search_filter": ("(&(objectClass=user)"
                          "(|(sAMAccountName={username})(userPrincipalName={username})))"),
        # AD's LDAP_MATCHING_RULE_IN_CHAIN would add nested groups: (member:1.2.840.113556.
        # 1.4.1941:={dn}); memberOf (direct groups only) needs no search at all.
        "group_search_filter": "(&(objectClass=group)(member={dn}))",
        "attributes": {"username": "sAMAccountName", "sip_username": "ipPhone",
                       "member_of": "memberOf", "account_control": "userAccountControl"},
    },
}

USER_FIELDS = frozenset({"username"})
ENTRY_FIELDS = frozenset({"username", "dn"})


def template_fields(template: str, allowed: frozenset[str]) -> set[str]:
    """The ``{placeholders}`` of ``template``; anything but a bare allowed name is an error."""
    found: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc} (write a literal brace as '{{{{' or '}}}}')") from None
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            raise ValueError(f"unknown placeholder {{{name}}}; allowed: "
                             + ", ".join(f"{{{n}}}" for n in sorted(allowed)))
        found.add(name)
    return found


def _check_filter(template: str, allowed: frozenset[str]) -> set[str]:
    # ldap3 (~6 MB) is imported here, when a configured backend's filters are validated at
    # load, not by every server that loads the (inert) plugin.
    from ldap3.core.exceptions import LDAPException
    from ldap3.operation.search import parse_filter
    from ldap3.utils.conv import escape_filter_chars

    fields = template_fields(template, allowed)
    sample = template.format(**{name: escape_filter_chars("x*") for name in fields})
    try:
        parse_filter(sample, None, False, False, None, False)  # type: ignore[no-untyped-call]
    except LDAPException as exc:
        raise ValueError(f"not a valid LDAP filter ({exc})") from None
    return fields


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValueError("expected ldap://host[:port] or ldaps://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("only scheme, host and port are allowed")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("bad port") from None
    return url


class LdapSettings(_Model):
    #: Tried in order; a server that fails moves to the back for ``retry_after`` seconds.
    servers: tuple[str, ...] = ()
    preset: Literal["openldap", "active_directory"] = "openldap"
    #: Upgrade ``ldap://`` connections with StartTLS (``ldaps://`` servers are TLS already).
    start_tls: bool = False
    #: CA bundle (PEM) that signed the servers' certificates; default: the system CAs.
    ca_file: Path | None = None
    #: Verify the server certificate and host name. Turn off only for testing.
    verify: bool = True
    #: Allow ``ldap://`` without StartTLS, which sends every password in clear text.
    allow_plaintext: bool = False
    connect_timeout: float = Field(3.0, gt=0, le=60)
    #: Whole seconds: ldap3 sets it as the socket's SO_RCVTIMEO, which takes an integer.
    receive_timeout: int = Field(5, ge=1, le=300)
    retry_after: float = Field(30.0, ge=0, le=3600)
    #: Connections per pool (one pool for searches, one for user binds).
    pool_size: int = Field(8, ge=1, le=256)
    #: Seconds a request waits for a free pooled connection before answering 503.
    pool_timeout: float = Field(5.0, gt=0, le=60)

    bind_mode: Literal["direct", "search"] = "search"
    #: Direct mode: the user's DN, e.g. ``uid={username},ou=people,dc=example,dc=com``.
    user_dn_template: str | None = None
    search_base: str | None = None
    search_filter: str | None = None
    search_scope: Literal["subtree", "level"] = "subtree"
    #: Account that searches (search mode) and reads; none means anonymous.
    service_dn: str | None = None
    service_password: SecretStr | None = None
    service_password_file: SecretFile | None = None

    attributes: AttributeMap = AttributeMap()
    accounts_from: Literal["attribute", "subsearch", "none"] = "attribute"
    #: Sub-search base and filter; ``{dn}`` is the user's DN, ``{username}`` the login name.
    accounts_base: str | None = None
    accounts_filter: str = "(objectClass=*)"
    accounts_scope: Literal["subtree", "level"] = "subtree"
    #: SIP domain of the accounts (unless ``attributes.domain`` is set and present).
    domain: str | None = None

    #: Where group entries are searched; unset means groups come from ``attributes.member_of``.
    group_search_base: str | None = None
    group_search_filter: str | None = None
    group_name_attribute: str = "cn"
    #: First match wins, in this order.
    group_profiles: tuple[GroupProfile, ...] = ()
    #: Offer the directory to Zoiper5 clients as a contact service (``contacts.py``).
    contact_service: LdapContactService | None = None

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        # No servers: the table is absent or incomplete; presets must not make it look set.
        if not isinstance(data, dict) or not data.get("servers"):
            return data
        preset = PRESETS.get(str(data.get("preset", "openldap")))
        if preset is None:
            return data  # the Literal reports the bad value
        merged = dict(data)
        for key, value in preset.items():
            if key == "attributes":
                given = merged.get("attributes")
                if given is None or isinstance(given, dict):
                    merged["attributes"] = {**value, **(given or {})}
            else:
                merged.setdefault(key, value)
        return merged

    @property
    def enabled(self) -> bool:
        return bool(self.servers)

    @model_validator(mode="after")
    def _consistent(self) -> LdapSettings:
        if not self.servers:
            extra = self.model_fields_set - {"preset"}
            if extra:
                raise _invalid("servers", list(self.servers), "list at least one ldap:// or "
                               f"ldaps:// URL (other keys are set: {', '.join(sorted(extra))})")
            return self
        for url in self.servers:
            _checked("servers", url, partial(_check_url, url))
            if url.startswith("ldap://") and not self.start_tls and not self.allow_plaintext:
                raise _invalid("servers", url, "would receive passwords in clear text: set "
                               "start_tls = true, use ldaps://, or set allow_plaintext = true")
        self._check_binding()
        self._check_accounts()
        if self.group_search_base is not None:
            if not self.group_search_filter:
                raise _invalid("group_search_filter", None, "required with group_search_base")
            _checked("group_search_filter", self.group_search_filter,
                     lambda: _check_filter(self.group_search_filter or "", ENTRY_FIELDS))
        if self.group_profiles and self.group_search_base is None \
                and self.attributes.member_of is None:
            raise _invalid("group_profiles", [g.group for g in self.group_profiles],
                           "set group_search_base or attributes.member_of, "
                           "or no group can ever match")
        return self

    def _check_binding(self) -> None:
        if self.bind_mode == "direct":
            template = self.user_dn_template
            if not template:
                raise _invalid("user_dn_template", None, "required with bind_mode = 'direct'")
            fields = _checked("user_dn_template", template,
                              lambda: template_fields(template, USER_FIELDS))
            if "username" not in fields:
                raise _invalid("user_dn_template", template, "must contain {username}")
        elif not self.search_base:
            raise _invalid("search_base", None, "required with bind_mode = 'search'")
        search_filter = self.search_filter
        if search_filter:
            fields = _checked("search_filter", search_filter,
                              lambda: _check_filter(search_filter, USER_FIELDS))
            if "username" not in fields:
                raise _invalid("search_filter", search_filter, "must contain {username}")
        elif self.bind_mode == "search":
            raise _invalid("search_filter", None, "required with bind_mode = 'search'")
        has_password = self.service_password is not None or \
            self.service_password_file is not None
        if self.service_password is not None and self.service_password_file is not None:
            raise _invalid("service_password", "<secret>",
                           "set it or service_password_file, not both")
        if self.service_dn and not has_password:
            # A simple bind with a DN and no password is an unauthenticated bind (RFC 4513).
            raise _invalid("service_dn", self.service_dn,
                           "needs service_password or service_password_file")
        if has_password and not self.service_dn:
            raise _invalid("service_dn", None, "required with service_password")

    def _check_accounts(self) -> None:
        if self.accounts_from == "none":
            return
        attrs = self.attributes
        if not attrs.sip_username or not attrs.sip_password:
            raise _invalid("attributes", attrs.model_dump(),
                           f"accounts_from = {self.accounts_from!r} needs sip_username and "
                           "sip_password (or accounts_from = 'none' when another plugin "
                           "has the accounts)")
        if not self.domain and not attrs.domain:
            raise _invalid("domain", None, "required for the SIP accounts "
                           "(or set attributes.domain)")
        if self.accounts_from == "subsearch":
            base = self.accounts_base
            if not base:
                raise _invalid("accounts_base", None, "required with accounts_from = 'subsearch'")
            _checked("accounts_base", base, lambda: template_fields(base, ENTRY_FIELDS))
            _checked("accounts_filter", self.accounts_filter,
                     lambda: _check_filter(self.accounts_filter, ENTRY_FIELDS))


def _invalid(key: str, value: object, message: str) -> ValidationError:
    """An error that names ``key`` and shows only ``value`` (never a secret).

    A plain ``ValueError`` from a model validator would carry the whole input table, secrets
    included, into the message the core prints.
    """
    return ValidationError.from_exception_data("LdapSettings", [InitErrorDetails(
        type=PydanticCustomError("ldap_config", "{message}", {"message": message}),
        loc=(key,), input=value)])


def _checked(key: str, value: object, check: Callable[[], T]) -> T:
    try:
        return check()
    except ValueError as exc:
        raise _invalid(key, value, str(exc)) from None
