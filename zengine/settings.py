"""Typed settings: built-in defaults < the TOML config file < ``ZENGINE_*`` environment.

``ZENGINE_SERVER__PORT=9000`` sets ``[server] port``; ``__`` separates table levels. The result is
frozen: nothing changes settings after startup.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from zengine import catalog
from zengine.doccache import DocumentCacheSettings
from zengine.errors import ConfigError
from zengine.logincache import LoginCacheSettings
from zengine.passwords import PasswordSettings
from zengine.settingsmodels import (
    AuthSettings,
    ClientSettings,
    ErrorSettings,
    ErrorStatusSettings,
    LoggingSettings,
    RequestSettings,
    SecretFile,
    ServerSettings,
    secret_files,
)
from zengine.tenantconfig import (
    TenantDef,
    TenantsConfig,
    check_unique,
    merge,
    split_tenants,
    tenant_overlay,
)

__all__ = [
    "ENV_PREFIX", "AuthSettings", "ClientSettings", "ErrorSettings", "ErrorStatusSettings",
    "LoggingSettings", "RequestSettings", "SecretFile", "ServerSettings", "Settings",
    "format_validation_error", "load_settings", "resolve_secret", "secret_files",
    "settings_from_mapping",
]

ENV_PREFIX = "ZENGINE_"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    request: RequestSettings = field(default_factory=RequestSettings)
    clients: ClientSettings = field(default_factory=ClientSettings)
    errors: ErrorSettings = field(default_factory=ErrorSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    passwords: PasswordSettings = field(default_factory=PasswordSettings)
    login_cache: LoginCacheSettings = field(default_factory=LoginCacheSettings)
    document_cache: DocumentCacheSettings = field(default_factory=DocumentCacheSettings)
    #: Options-level catalogue fields (``customer_sid``, ``diagnostics``, ``breakpad`` …).
    document: Mapping[str, Any] = field(default_factory=dict)
    #: ``[document] send_defaults``: also send catalogue defaults nobody configured.
    send_defaults: bool = False
    #: Account catalogue fields applied to every account.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_profile: str | None = None
    disabled_plugins: tuple[str, ...] = ()
    #: Raw ``[plugins.<name>]`` tables; each plugin validates its own.
    plugin_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Directory relative paths in the config are resolved against.
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "<defaults>"
    #: Which ``ZENGINE_*`` variable set which key (``("server", "port")``), for error messages.
    env_sources: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    #: ``[tenants]``: the resolution chain and every tenant's own merged settings (empty:
    #: one tenant, ``""``, as before tenants existed).
    tenants: TenantsConfig = field(default_factory=TenantsConfig)
    #: The tenant these settings are for (``""``: the global settings).
    tenant: str = ""

    def resolve_path(self, path: str | Path) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate


_SECRET_KEY = re.compile(r"password|secret|token|key|url", re.IGNORECASE)


def _parse_env_value(key: str, raw: str) -> Any:
    # A secret is taken verbatim: "123" or '"quoted"' is a password, not a number or a string
    # literal (URLs too: they may carry a password and never need TOML syntax).
    if _SECRET_KEY.search(key):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _overlay_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Apply ``ZENGINE_*`` variables; returns which variable set which key, for errors."""
    sources: dict[tuple[str, ...], str] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}CONFIG":
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {key}: {part!r} is not a table")
            node = child
        node[parts[-1]] = _parse_env_value(parts[-1], raw)
        sources[tuple(parts)] = key
    return sources


def _model(cls: type[BaseModel], merged: Mapping[str, Any], table: str, source: str,
           env: Mapping[tuple[str, ...], str]) -> Any:
    where = f"{source} [{table}]"
    data = merged.get(table)
    try:
        return cls.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, env=env, table=(table,))) from None


def _env_variable(env: Mapping[tuple[str, ...], str], path: tuple[str, ...]) -> str | None:
    """The ``ZENGINE_*`` variable that set ``path`` or a table above it, if any."""
    for end in range(len(path), 0, -1):
        if path[:end] in env:
            return env[path[:end]]
    return None


def format_validation_error(exc: ValidationError, where: str, *,
                            env: Mapping[tuple[str, ...], str] | None = None,
                            table: tuple[str, ...] = ()) -> str:
    """One line per error. A value that came from the environment names its variable, since
    the config file the operator would look in does not hold it."""
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        variable = _env_variable(env or {}, (*table, *(str(p) for p in error["loc"])))
        if variable is not None and error["loc"]:
            shown = "<secret>" if _SECRET_LOC.search(loc) else _no_userinfo(
                repr(error.get("input")))
            lines.append(f"environment variable {variable} ({where} key {loc!r}) = {shown}: "
                         f"{error['msg']}")
            continue
        if not error["loc"]:
            # A model-level error's input is the whole table, secrets included.
            lines.append(f"{where}: {error['msg']}")
            continue
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key {loc!r}")
        else:
            shown = "<secret>" if _SECRET_LOC.search(loc) else _no_userinfo(
                repr(error.get("input")))
            lines.append(f"{where}: key {loc!r} = {shown}: {error['msg']}")
    return "\n".join(lines)


# Values under these keys are never echoed back in a configuration error.
_SECRET_LOC = re.compile(r"pass(word|wd)?|secret|token|key|url|credential|dsn", re.IGNORECASE)
_USERINFO = re.compile(r"(\w[\w+.-]*://)[^/@\s'\"]+@")


def _no_userinfo(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://**redacted**@host``."""
    return _USERINFO.sub(r"\1**redacted**@", text)


_TOP_LEVEL = {"server", "request", "clients", "errors", "logging", "auth", "passwords",
              "login_cache", "document_cache",
              "document", "defaults", "profiles", "default_profile", "plugins", "tenants"}


def settings_from_mapping(
    data: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<mapping>",
    environ: Mapping[str, str] | None = None,
) -> Settings:
    merged: dict[str, Any] = _deepcopy(data)
    env = _overlay_env(merged, os.environ if environ is None else environ)
    unknown = set(merged) - _TOP_LEVEL
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}; "
                          f"allowed: {', '.join(sorted(_TOP_LEVEL))}")
    tenants_table = merged.pop("tenants", None) or {}
    if not isinstance(tenants_table, dict):
        raise ConfigError(f"{source}: [tenants] must be a table")
    settings = _build(merged, env, base_dir or Path.cwd(), source)
    if not tenants_table:
        return settings
    own, tables = split_tenants(tenants_table, source)
    tenants: dict[str, TenantDef] = {}
    for name, table in tables.items():
        keys, overlay = tenant_overlay(name, table, source)
        tenant_settings = _build(merge(merged, overlay), env, settings.base_dir,
                                 f"{source} [tenants.{name}]", tenant=name)
        tenants[name] = TenantDef(name, keys, tenant_settings)
    config = TenantsConfig(own, tenants)
    check_unique(config, source)
    return dataclasses.replace(settings, tenants=config)


def _build(merged: dict[str, Any], env: Mapping[tuple[str, ...], str], base_dir: Path,
           source: str, tenant: str = "") -> Settings:
    document_table = dict(merged.get("document") or {})
    send_defaults = document_table.pop("send_defaults", False)
    if not isinstance(send_defaults, bool):
        raise ConfigError(f"{source} [document]: send_defaults must be true or false")
    document = catalog.validate_fields(document_table, f"{source} [document]", scope="options")
    defaults = catalog.validate_fields(merged.get("defaults", {}), f"{source} [defaults]",
                                       forbid=catalog.ACCOUNT_OWNED)
    profiles: dict[str, dict[str, Any]] = {}
    for name, table in (merged.get("profiles") or {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [profiles.{name}] must be a table")
        profiles[name] = catalog.validate_fields(table, f"{source} [profiles.{name}]",
                                                 forbid=catalog.ACCOUNT_OWNED)
    default_profile = merged.get("default_profile")
    if default_profile is not None and default_profile not in profiles:
        raise ConfigError(f"{source}: default_profile {default_profile!r} is not a profile; "
                          f"defined: {', '.join(sorted(profiles)) or 'none'}")
    plugins = dict(merged.get("plugins") or {})
    disabled = plugins.pop("disabled", [])
    if not isinstance(disabled, list) or not all(isinstance(d, str) for d in disabled):
        raise ConfigError(f"{source}: [plugins] disabled must be a list of plugin names")
    for name, table in plugins.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [plugins.{name}] must be a table")
    return Settings(
        server=_model(ServerSettings, merged, "server", source, env),
        request=_model(RequestSettings, merged, "request", source, env),
        clients=_model(ClientSettings, merged, "clients", source, env),
        errors=_model(ErrorSettings, merged, "errors", source, env),
        logging=_model(LoggingSettings, merged, "logging", source, env),
        auth=_model(AuthSettings, merged, "auth", source, env),
        passwords=_model(PasswordSettings, merged, "passwords", source, env),
        login_cache=_model(LoginCacheSettings, merged, "login_cache", source, env),
        document_cache=_model(DocumentCacheSettings, merged, "document_cache", source, env),
        document=document,
        send_defaults=send_defaults,
        defaults=defaults,
        profiles=profiles,
        default_profile=default_profile,
        disabled_plugins=tuple(disabled),
        plugin_tables=plugins,
        base_dir=base_dir,
        source=source,
        env_sources=env,
        tenant=tenant,
    )


def load_settings(path: str | Path | None = None, *,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Load the config file (``--config``, else ``$ZENGINE_CONFIG``), then the environment."""
    env = os.environ if environ is None else environ
    chosen = path or env.get(f"{ENV_PREFIX}CONFIG")
    if not chosen:
        return settings_from_mapping({}, environ=env, source="<defaults>")
    config_path = Path(chosen).expanduser()
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    return settings_from_mapping(data, base_dir=config_path.resolve().parent,
                                 source=str(config_path), environ=env)


def resolve_secret(value: SecretStr | None, file: str | Path | None, settings: Settings,
                   what: str) -> SecretStr | None:
    """A secret comes from its own key, or from a file (first line, trailing newline dropped)."""
    if value is not None and file is not None:
        raise ConfigError(f"{what}: set the secret or its file, not both")
    if file is None:
        return value
    secret_path = settings.resolve_path(file)
    try:
        return SecretStr(secret_path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ConfigError(
            f"{what}: cannot read secret file {secret_path}: {exc.strerror}") from None


def _deepcopy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
