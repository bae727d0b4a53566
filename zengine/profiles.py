"""Resolve every catalogue field of an account: catalogue default < ``[defaults]`` < profile
< per-user overrides < per-account overrides < the account's own fields.

An operator writes each setting once, at the widest level where it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from zengine import catalog
from zengine.errors import AccountDataError, ConfigError
from zengine.models import Account, Identity, ResolvedAccount
from zengine.settings import Settings


def _account_fields(account: Account) -> dict[str, Any]:
    """The fields an :class:`Account` carries itself, in catalogue terms."""
    values: dict[str, Any] = {
        "ident": account.ident,
        "username": account.sip_username,
        "password": account.sip_password.get_secret_value(),
        "SIP_domain": account.domain,
        "name": account.name or account.sip_username,
    }
    if account.auth_username:
        values["SIP_use_auth_username"] = True
        values["SIP_auth_username"] = account.auth_username
    if account.caller_id:
        values["SIP_callerId"] = account.caller_id
    if account.outbound_proxy:
        values["SIP_use_outbound_proxy"] = True
        values["SIP_outbound_proxy"] = account.outbound_proxy
    if account.transport:
        values["SIP_transport_type"] = account.transport
    if account.token is not None:
        values["token"] = account.token.get_secret_value()
    return values


def _validated(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        return catalog.validate_fields(raw, where)
    except ConfigError as exc:
        # Backend data, not config: the message goes to the log, the user sees a generic one.
        raise AccountDataError(str(exc)) from None


def resolve_account(account: Account, identity: Identity, settings: Settings,
                    user_overrides: Mapping[str, Any] | None = None) -> ResolvedAccount:
    """``user_overrides``: the identity's overrides already validated (done once per login)."""
    profile = account.profile or identity.profile or settings.default_profile
    if profile is not None and profile not in settings.profiles:
        raise AccountDataError(f"account {account.ident!r} names unknown profile {profile!r}")
    values = dict(catalog.default_values(settings.send_defaults))
    values.update(settings.defaults)
    if profile is not None:
        values.update(settings.profiles[profile])
    where = f"account {account.ident!r} of {identity.username!r}"
    if user_overrides is None:
        user_overrides = _validated(identity.overrides, f"{where} (user overrides)")
    values.update(user_overrides)
    values.update(_validated(account.overrides, f"{where} (account overrides)"))
    values.update(_validated(_account_fields(account), where))
    return ResolvedAccount(account=account, profile=profile, values=values)


def resolve_accounts(accounts: Iterable[Account], identity: Identity,
                     settings: Settings) -> list[ResolvedAccount]:
    user = _validated(identity.overrides, f"user {identity.username!r} (user overrides)")
    return [resolve_account(account, identity, settings, user) for account in accounts]
