"""What an operator may store: the user and account specs, and the checks that refuse now
what would make a user's next provisioning fail (one validator for the CLI, the admin API and
imports)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from zengine import catalog
from zengine.errors import ConfigError
from zengine.values import xml_invalid_char


class AdminError(Exception):
    """A refused operator action; the message is safe to print. ``field`` names the refused
    field when there is one (the admin API's problem documents point at it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownUser(AdminError):
    """No user of that name in the own schema."""


class Exists(AdminError):
    """A user or account of that name exists already."""


#: Account fields an operator may set besides ident/username/password/domain.
ACCOUNT_OPTIONAL = ("name", "auth_username", "caller_id", "outbound_proxy", "transport",
                    "profile")
#: ``zengine users add-account --help`` for each of ACCOUNT_OPTIONAL (default: none, or the
#: profile's).
ACCOUNT_HELP = {"name": "account name shown in Zoiper",
                "auth_username": "SIP authentication user name, if not the SIP user name",
                "caller_id": "caller id to present",
                "outbound_proxy": "outbound proxy, host[:port]",
                "transport": "SIP transport: UDP, TCP or TLS",
                "profile": "a [profiles.<name>] for this account"}


@dataclass
class AccountSpec:
    ident: str
    sip_username: str
    sip_password: str
    domain: str
    optional: dict[str, str | None] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Where the spec came from ("users.csv row 3, " for an import), and the column names it
    #: used, for error messages.
    where: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    #: The SIP password as stored (ciphertext, key id), used when ``sip_password`` is empty:
    #: an import with ``--replace`` keeps the one of the account it replaces.
    sealed: tuple[Any, str] | None = None

    def __repr__(self) -> str:
        return f"AccountSpec(ident={self.ident!r})"


@dataclass
class UserSpec:
    username: str
    #: Plain password to hash, or ``password_hash`` an existing argon2 hash; both ``None``
    #: means no provisioning login here.
    password: str | None = None
    password_hash: str | None = None
    display_name: str | None = None
    profile: str | None = None
    tenant: str | None = None
    enabled: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    accounts: list[AccountSpec] = field(default_factory=list)
    where: str = ""

    def __repr__(self) -> str:
        return f"UserSpec(username={self.username!r}, accounts={len(self.accounts)})"


def check_overrides(overrides: Mapping[str, Any], where: str, *, account: bool) -> None:
    """Refuse unknown catalogue fields now, not at the user's next provisioning."""
    try:
        catalog.validate_fields(overrides, where,
                                forbid=() if account else catalog.ACCOUNT_OWNED)
    except ConfigError as exc:
        raise AdminError(str(exc), field=f"{where}") from None


def check_account(spec: AccountSpec, profiles: Collection[str]) -> None:
    """What would make the user's next provisioning fail, refused now: one validator for the
    CLI and for imports."""
    transport = spec.optional.get("transport")
    column = spec.columns.get("transport", "transport")
    if transport is not None:
        try:
            spec.optional["transport"] = catalog.coerce(
                catalog.account_fields()["SIP_transport_type"], transport, "")
        except ConfigError:
            raise AdminError(f"{spec.where}column {column!r}: {transport!r}: allowed UDP, TCP, "
                             "TLS", field=f"{spec.where}{column}") from None
    check_profile(spec.optional.get("profile"), profiles, spec.where,
                   spec.columns.get("profile", "profile"))


def check_user(spec: UserSpec, profiles: Collection[str]) -> None:
    check_profile(spec.profile, profiles, spec.where, "profile")
    for account in spec.accounts:
        check_account(account, profiles)


def check_profile(name: str | None, profiles: Collection[str], where: str,
                   column: str) -> None:
    if name is not None and name not in profiles:
        raise AdminError(f"{where}column {column!r}: unknown profile {name!r}; defined in the "
                         f"config: {', '.join(sorted(profiles)) or 'none'}",
                         field=f"{where}{column}")



def check_text(where: str, field_name: str, value: Any) -> None:
    """Refuse a stored value a provisioning document could not carry (XML 1.0 has no control
    characters), naming the field: the user's next login would otherwise fail."""
    if isinstance(value, str):
        bad = xml_invalid_char(value)
        if bad is not None:
            raise AdminError(f"{where}field {field_name!r}: contains U+{ord(bad):04X}, a "
                             "character XML cannot carry", field=f"{where}{field_name}")


def check_texts(spec: UserSpec | AccountSpec) -> None:
    if isinstance(spec, UserSpec):
        values: dict[str, Any] = {"username": spec.username, "password": spec.password,
                                  "display_name": spec.display_name, "profile": spec.profile,
                                  "tenant": spec.tenant}
    else:
        values = {"ident": spec.ident, "sip_username": spec.sip_username,
                  "sip_password": spec.sip_password, "domain": spec.domain, **spec.optional}
    for name, value in values.items():
        check_text(spec.where, spec.columns.get(name, name) if isinstance(spec, AccountSpec)
                   else name, value)
