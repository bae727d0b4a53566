"""The static users file: TOML, validated at load time so mistakes surface at startup."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from zengine import catalog
from zengine.errors import ConfigError
from zengine.models import Account, Identity
from zengine.settings import format_validation_error

_ARGON2_PREFIX = "$argon2id$"
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}", re.ASCII)


def _xml_safe(value: str | None) -> str | None:
    if value is not None:
        bad = catalog.xml_invalid_char(value)
        if bad is not None:
            raise ValueError(f"contains U+{ord(bad):04X}, which XML 1.0 cannot carry")
    return value


class StaticAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ident: str = Field(min_length=1, max_length=128)
    sip_username: str = Field(min_length=1)
    sip_password: SecretStr
    domain: str = Field(min_length=1)
    name: str | None = None
    auth_username: str | None = None
    caller_id: str | None = None
    outbound_proxy: str | None = None
    transport: str | None = None
    profile: str | None = None
    token: SecretStr | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ident", "sip_username", "domain", "name", "auth_username", "caller_id",
                     "outbound_proxy", "transport", "profile")
    @classmethod
    def _xml(cls, value: str | None) -> str | None:
        return _xml_safe(value)

    @field_validator("sip_password", "token")
    @classmethod
    def _xml_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _xml_safe(value.get_secret_value())
        return value

    @field_validator("token")
    @classmethod
    def _url_safe(cls, value: SecretStr | None) -> SecretStr | None:
        # Zoiper appends the token to token_url verbatim, unencoded.
        if value is not None and not _URL_SAFE.fullmatch(value.get_secret_value()):
            raise ValueError("a token may only hold A-Z a-z 0-9 - _ (Zoiper appends it to "
                             "token_url unencoded), 1 to 128 of them")
        return value


class StaticUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    password_hash: str
    enabled: bool = True
    profile: str | None = None
    display_name: str | None = None
    tenant: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    accounts: list[StaticAccount] = Field(default_factory=list)

    @field_validator("password_hash")
    @classmethod
    def _argon2id(cls, value: str) -> str:
        if not value.startswith(_ARGON2_PREFIX):
            # Plaintext in a config file is exactly what the hash-password command avoids.
            raise ValueError("must be an argon2id hash made by `zengine hash-password`")
        return value


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    users: dict[str, StaticUser] = Field(default_factory=dict)


def load_users(path: Path, profiles: Mapping[str, Any]) -> dict[str, StaticUser]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read users file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        parsed = UsersFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    idents: dict[str, str] = {}
    for username, user in parsed.users.items():
        where = f"{path} [users.{username}]"
        catalog.validate_fields(user.overrides, f"{where}.overrides",
                                forbid=catalog.ACCOUNT_OWNED)
        for profile in [user.profile, *(a.profile for a in user.accounts)]:
            if profile is not None and profile not in profiles:
                raise ConfigError(f"{where}: unknown profile {profile!r}; defined: "
                                  f"{', '.join(sorted(profiles)) or 'none'}")
        for account in user.accounts:
            catalog.validate_fields(account.overrides, f"{where} account {account.ident!r}",
                                    forbid=catalog.ACCOUNT_OWNED)
            if account.transport is not None:
                catalog.coerce(catalog.account_fields()["SIP_transport_type"], account.transport,
                               f"{where} account {account.ident!r}")
            owner = idents.get(account.ident)
            if owner is not None:
                whose = "another account of this user" if owner == username else f"user {owner!r}"
                raise ConfigError(f"{where}: account ident {account.ident!r} is already used by "
                                  f"{whose}; idents must be unique")
            idents[account.ident] = username
    return dict(parsed.users)


def identity_of(username: str, user: StaticUser) -> Identity:
    return Identity(username=username, backend="static", profile=user.profile,
                    display_name=user.display_name, tenant=user.tenant,
                    overrides=user.overrides)


def accounts_of(user: StaticUser) -> list[Account]:
    return [
        Account(
            ident=a.ident, sip_username=a.sip_username, sip_password=a.sip_password,
            domain=a.domain, name=a.name, auth_username=a.auth_username,
            caller_id=a.caller_id, outbound_proxy=a.outbound_proxy, transport=a.transport,
            profile=a.profile, token=a.token, source="static", overrides=a.overrides,
        )
        for a in user.accounts
    ]
