"""The ``[tenants]`` table: how a request finds its tenant, and each ``[tenants.<name>]``
overlay on the global settings.

A tenant table holds its resolution keys (``hosts``, ``path_keys``, ``suffixes``) and any of
the tables in :data:`OVERLAYABLE`, merged over the global ones (tables merge key by key, any
other value replaces). What every tenant must share is refused in a tenant table: the HTTP
server, logging, the password pool, the caches, error statuses and the failure floor (an
unknown tenant must get the same answer as a wrong login, so these answers cannot differ).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

#: Resolution methods of the built-in chain, in the order a ``[tenants] resolve`` names them.
Method = Literal["host", "path_key", "login_suffix", "default"]
#: Tables a ``[tenants.<name>]`` table may overlay.
OVERLAYABLE = frozenset({"document", "defaults", "profiles", "default_profile", "auth", "plugins"})
#: Keys of ``[auth]`` a tenant may set (``failure_floor_ms`` is shared: see the module doc).
TENANT_AUTH_KEYS = frozenset({"chain", "account_sources"})
#: A tenant name: it appears in Redis keys, SQL rows, log lines and a metrics label.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}", re.ASCII)
_HOST = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}"
                   r"[a-z0-9])?", re.ASCII)
_DIGEST = re.compile(r"[0-9a-f]{64}", re.ASCII)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantKeys(_Model):
    """The resolution keys of one ``[tenants.<name>]`` table (the rest is its overlay)."""

    #: Host names (``prov.acme.example``) and wildcards (``*.acme.example``: any name below).
    hosts: tuple[str, ...] = ()
    #: Keyed digests (``zengine tenant-key``) of the secrets phones put in ``/t/<key>/id.php``;
    #: several at once while a key is rotated.
    path_keys: tuple[str, ...] = ()
    #: Login suffixes: ``alice@acme`` logs in as ``alice`` of this tenant. Default: the name.
    suffixes: tuple[str, ...] | None = None

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(host.lower().rstrip(".") for host in value)
        for host in lowered:
            if not _HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name or a *.domain wildcard")
        return lowered

    @field_validator("path_keys")
    @classmethod
    def _digests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for digest in value:
            if not _DIGEST.fullmatch(digest):
                # Never echo it: an operator may have pasted the key itself.
                raise ValueError("each path key must be the 64-hex-digit digest printed by "
                                 "`zengine tenant-key` (not the key itself)")
        return value

    @field_validator("suffixes")
    @classmethod
    def _suffixes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        lowered = tuple(suffix.lower() for suffix in value)
        for suffix in lowered:
            if not suffix or "@" in suffix or not suffix.isprintable():
                raise ValueError(f"{suffix!r} is not a login suffix")
        return lowered


class TenantsSettings(_Model):
    """The ``[tenants]`` keys that are not tenant tables."""

    #: The built-in methods, in order; the first that names a tenant decides.
    resolve: tuple[Method, ...] = ("host", "path_key", "login_suffix", "default")
    #: The tenant of a request no other method placed; unset: such requests are refused
    #: (with the answer of a wrong login).
    default: str | None = None
    #: HMAC key the path keys' digests are made with (at least 32 characters).
    path_key_secret: SecretStr | None = None
    #: File holding ``path_key_secret`` (first line), instead of the key itself.
    path_key_secret_file: Path | None = None

    @field_validator("resolve")
    @classmethod
    def _once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("names a method more than once")
        return value


@dataclass(frozen=True)
class TenantDef:
    """One configured tenant: its keys and its own, fully merged, settings."""

    name: str
    keys: TenantKeys
    #: Built by :func:`zengine.settings.settings_from_mapping` (a ``Settings``).
    settings: Any

    @property
    def suffixes(self) -> tuple[str, ...]:
        return self.keys.suffixes if self.keys.suffixes is not None else (self.name,)


@dataclass(frozen=True)
class TenantsConfig:
    settings: TenantsSettings = field(default_factory=TenantsSettings)
    tenants: Mapping[str, TenantDef] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.tenants)


def split_tenants(table: Mapping[str, Any], source: str) -> tuple[TenantsSettings,
                                                                  dict[str, dict[str, Any]]]:
    """``[tenants]`` -> its own keys, validated, and the raw tenant tables by name."""
    from zengine.errors import ConfigError
    from zengine.settings import format_validation_error

    own = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: dict(v) for k, v in table.items() if isinstance(v, Mapping)}
    try:
        tenants_settings = TenantsSettings.model_validate(own)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{source} [tenants]")) from None
    for name in tables:
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{source}: [tenants.{name}]: a tenant name is 1 to 63 of "
                              "a-z 0-9 _ . - (starting with a letter or digit)")
    if tenants_settings.default is not None and tenants_settings.default not in tables:
        raise ConfigError(f"{source} [tenants]: default {tenants_settings.default!r} is not a "
                          f"tenant; defined: {', '.join(sorted(tables)) or 'none'}")
    return tenants_settings, tables


def tenant_overlay(name: str, table: Mapping[str, Any], source: str) -> tuple[TenantKeys,
                                                                            dict[str, Any]]:
    """A tenant table -> its validated keys and the overlay to merge over the global tables."""
    from zengine.errors import ConfigError
    from zengine.settings import format_validation_error

    where = f"{source} [tenants.{name}]"
    key_names = set(TenantKeys.model_fields)
    keys_table = {k: v for k, v in table.items() if k in key_names}
    overlay = {k: v for k, v in table.items() if k not in key_names}
    refused = sorted(set(overlay) - OVERLAYABLE)
    if refused:
        raise ConfigError(f"{where}: {refused} cannot differ per tenant; a tenant table may "
                          f"set {', '.join(sorted(key_names | OVERLAYABLE))}")
    auth = overlay.get("auth") or {}
    if set(auth) - TENANT_AUTH_KEYS:
        raise ConfigError(f"{where} [auth]: only {', '.join(sorted(TENANT_AUTH_KEYS))} may "
                          f"differ per tenant, not {sorted(set(auth) - TENANT_AUTH_KEYS)}")
    if "disabled" in (overlay.get("plugins") or {}):
        raise ConfigError(f"{where} [plugins]: disabled is shared by every tenant (one set of "
                          "plugins is loaded); configure the plugin per tenant instead")
    try:
        keys = TenantKeys.model_validate(keys_table)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
    return keys, overlay


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (a list too) replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge(old, value)
        else:
            merged[key] = value
    return merged


def check_unique(config: TenantsConfig, source: str) -> None:
    """One host, key or suffix names one tenant: otherwise the chain's answer would depend on
    dictionary order."""
    from zengine.errors import ConfigError

    seen: dict[tuple[str, str], str] = {}
    for tenant in config.tenants.values():
        for kind, values in (("host", tenant.keys.hosts), ("path key", tenant.keys.path_keys),
                             ("suffix", tenant.suffixes)):
            for value in values:
                other = seen.setdefault((kind, value), tenant.name)
                if other != tenant.name:
                    shown = "(a digest)" if kind == "path key" else repr(value)
                    raise ConfigError(f"{source}: {kind} {shown} names both tenant {other!r} "
                                      f"and {tenant.name!r}")
    if any(t.keys.path_keys for t in config.tenants.values()) and (
            config.settings.path_key_secret is None
            and config.settings.path_key_secret_file is None):
        raise ConfigError(f"{source} [tenants]: path_keys need path_key_secret (or "
                          "path_key_secret_file), the key their digests were made with")
