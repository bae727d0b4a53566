"""The admin API's bodies, as pydantic models: requests are validated by them, answers are
built from them, and the OpenAPI document is generated from them (one source for all three).
The console renders the same models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

_NAME = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,253}[^\s\x00-\x1f\x7f])?$"
_IDENT = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
#: One line of text a provisioning document can carry: no control character (XML 1.0 has
#: none, and no phone can type one). The service refuses the rest of what XML cannot carry.
LINE = "^[^\\x00-\\x1f\\x7f\ufffe\uffff]*$"


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class In(BaseModel):
    # A mistyped key is an error naming the key, not a silently ignored field.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Page(Out, Generic[T]):
    items: list[T]
    #: Items before this page.
    offset: int
    limit: int
    #: Every matching item, when the backend can count them cheaply; else ``None``.
    total: int | None = None


class AccountView(Out):
    ident: str
    sip_username: str
    domain: str
    name: str | None = None
    auth_username: str | None = None
    caller_id: str | None = None
    outbound_proxy: str | None = None
    transport: str | None = None
    profile: str | None = None
    enabled: bool = True


class UserSummary(Out):
    username: str
    #: The backend that holds the user (``sql``, ``static``, ``ldap``...).
    backend: str
    tenant: str | None = None
    display_name: str | None = None
    profile: str | None = None
    enabled: bool = True
    #: Whether the API can change this user (SQL own schema only).
    writable: bool = False
    accounts: int | None = None


class UserDetail(UserSummary):
    account_list: list[AccountView] = Field(default_factory=list)
    #: Whether the user has a provisioning password (``None``: the backend does not say).
    has_password: bool | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class UserPage(Page[UserSummary]):
    pass


class AccountCreate(In):
    ident: str = Field(pattern=_IDENT)
    sip_username: str = Field(min_length=1, max_length=255, pattern=LINE)
    sip_password: str = Field(min_length=1, max_length=255, pattern=LINE)
    domain: str = Field(min_length=1, max_length=255, pattern=LINE)
    name: str | None = Field(None, max_length=255, pattern=LINE)
    auth_username: str | None = Field(None, max_length=255, pattern=LINE)
    caller_id: str | None = Field(None, max_length=255, pattern=LINE)
    outbound_proxy: str | None = Field(None, max_length=255, pattern=LINE)
    transport: Literal["UDP", "TCP", "TLS", "udp", "tcp", "tls"] | None = None
    profile: str | None = Field(None, max_length=64, pattern=LINE)
    overrides: dict[str, Any] = Field(default_factory=dict)


class UserCreate(In):
    username: str = Field(min_length=1, max_length=255, pattern=_NAME)
    #: The provisioning password (hashed with argon2id); omit for a user without a login.
    password: str | None = Field(None, min_length=1, max_length=1024, pattern=LINE)
    display_name: str | None = Field(None, max_length=255, pattern=LINE)
    profile: str | None = Field(None, max_length=64, pattern=LINE)
    tenant: str | None = Field(None, min_length=1, max_length=64, pattern=LINE)
    enabled: bool = True
    overrides: dict[str, Any] = Field(default_factory=dict)
    accounts: list[AccountCreate] = Field(default_factory=list, max_length=64)


class UserUpdate(In):
    """Only the fields sent change; ``null`` clears an optional one."""

    display_name: str | None = Field(None, max_length=255, pattern=LINE)
    profile: str | None = Field(None, max_length=64, pattern=LINE)
    enabled: bool | None = None
    overrides: dict[str, Any] | None = None


class PasswordSet(In):
    #: The new provisioning password; ``null`` removes the login (the user keeps accounts).
    password: str | None = Field(min_length=1, max_length=1024, pattern=LINE)


class SipPasswordSet(In):
    sip_password: str = Field(min_length=1, max_length=255, pattern=LINE)


class TokenIssue(In):
    username: str = Field(min_length=1, max_length=255, pattern=LINE)
    #: One account's ident; omit for all of the user's accounts.
    account: str | None = Field(None, min_length=1, max_length=128, pattern=LINE)
    #: Lifetime in seconds (default ``[plugins.tokens] ttl``).
    ttl_seconds: int | None = Field(None, ge=60, le=366 * 86400)
    uses: int | None = Field(None, ge=1, le=1000)
    #: Keep the user's older live tokens for the same account (default: revoke them).
    keep_older: bool = False


class TokenView(Out):
    id: str
    username: str
    account: str | None
    tenant: str
    purpose: str
    state: Literal["active", "used", "expired", "revoked"]
    created: datetime
    expires: datetime
    max_uses: int
    uses: int
    revoked: datetime | None = None
    last_used: datetime | None = None
    last_used_addr: str | None = None
    issued_by: str


class IssuedTokenView(Out):
    """The only answer that carries the token: show it once, never store it."""

    id: str
    token: str
    username: str
    account: str | None
    expires: datetime
    max_uses: int
    #: Zoiper's OEM QR-howto link (or the token URL when no provider id is set; "" if none).
    link: str
    #: The link as a QR code, a standalone SVG document ("" when there is no link).
    qr_svg: str


class TokenPage(Page[TokenView]):
    pass


class LockoutView(Out):
    tenant: str
    kind: Literal["user", "address"]
    name: str
    failures: int
    #: Seconds the account stays locked (0: failures counted, not locked).
    locked_for: int


class Cleared(Out):
    cleared: int


class Revoked(Out):
    revoked: int


class TenantView(Out):
    name: str
    #: Where the tenant is known from: ``config`` (a ``[tenants.<name>]`` table, with a
    #: runtime of its own), ``sql`` (a row of the own schema), ``static`` (named by users of
    #: the static file).
    source: str
    users: int | None = None


class ProfileView(Out):
    name: str
    settings: dict[str, Any]


class PluginView(Out):
    name: str
    version: str | None = None
    hooks: list[str]


class BackendStatus(Out):
    backend: str
    ready: bool
    reason: str | None = None
    detail: str | None = None


class StatusView(Out):
    ready: bool
    version: str
    backends: list[BackendStatus]


class PreviewView(Out):
    username: str
    family: str
    version: str | None
    content_type: str
    #: The document exactly as the user's client gets it, every password and token replaced
    #: by ``********``.
    document: str


class AuditEntry(Out):
    id: int
    time: datetime
    event: str
    outcome: str
    tenant: str
    username: str | None = None
    backend: str | None = None
    client_addr: str | None = None
    family: str | None = None
    version: str | None = None
    account_count: int = 0
    detail: str | None = None


class AuditPageView(Out):
    """Newest first. ``next_cursor`` is ``null`` on the last page, else what to pass as
    ``cursor`` for the next, older page (stable: new events never shift later pages)."""

    items: list[AuditEntry]
    next_cursor: str | None = None


class ProblemView(Out):
    """``application/problem+json`` (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None
