"""Typed settings: built-in defaults < the TOML config file < ``ZENGINE_*`` environment.

``ZENGINE_SERVER__PORT=9000`` sets ``[server] port``; ``__`` separates table levels. The result is
frozen: nothing changes settings after startup.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from zengine import catalog
from zengine.doccache import DocumentCacheSettings
from zengine.errors import ConfigError
from zengine.logincache import LoginCacheSettings
from zengine.passwords import PasswordSettings

ENV_PREFIX = "ZENGINE_"


class _SecretFileMarker:
    """Marks a settings field whose file holds secrets (``check-config`` checks its mode)."""


#: A path to a file that holds secrets: users with password hashes, keys, a password.
#: ``zengine check-config`` warns when such a file is readable by other users.
SecretFile = Annotated[Path, _SecretFileMarker()]


def secret_files(model: BaseModel) -> list[tuple[str, Path]]:
    """``(key, path)`` of every :data:`SecretFile` field set in ``model``."""
    found: list[tuple[str, Path]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, Path) and (_marked(info.metadata)
                                        or _marked_type(info.annotation)):
            found.append((name, value))
    return found


def _marked(metadata: Iterable[object]) -> bool:
    return any(isinstance(item, _SecretFileMarker) for item in metadata)


def _marked_type(annotation: Any) -> bool:
    """``SecretFile | None`` keeps the marker inside the union's ``Annotated`` member."""
    if get_origin(annotation) is Annotated:
        return _marked(annotation.__metadata__)
    return any(_marked_type(arg) for arg in get_args(annotation))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Model):
    #: HTTP server: ``hypercorn`` (always installed) or, with ``pip install 'zengine[fast]'``,
    #: ``granian`` or ``uvicorn``. Every engine takes the keys below.
    engine: Literal["hypercorn", "granian", "uvicorn"] = "hypercorn"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    #: URL paths answered with provisioning documents.
    paths: tuple[str, ...] = ("/id.php", "/provision")
    #: The engine's access log (never with the query string); ``false`` turns it off.
    access_log: bool = True
    #: Longest accepted parameter value, in characters.
    max_param_length: int = Field(256, ge=16, le=65536)
    #: Largest accepted POST body, in bytes.
    max_body_bytes: int = Field(16384, ge=256, le=1048576)
    #: Seconds a client may stay silent while sending its request before it is dropped.
    read_timeout: int = Field(30, ge=1, le=3600)
    #: Seconds a client may take to send its whole POST body, however it trickles it.
    body_timeout: int = Field(10, ge=1, le=3600)
    #: Seconds the backend part of a request (login, accounts, document) may take before the
    #: client gets a 503, whatever the backend does (hang, black hole).
    backend_timeout: float = Field(10.0, gt=0, le=600)
    #: This server's URL as clients reach it (``https://prov.example.com``, a path prefix
    #: allowed), for links the server hands out; ``None`` when not known.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", value):
            raise ValueError("public_url must be an http:// or https:// URL without query, "
                             "fragment or user info")
        return value

    #: Reverse proxies (addresses or CIDRs) whose ``Forwarded`` / ``X-Forwarded-For`` headers
    #: name the real client. Empty (the default): the headers are never trusted.
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
        return value

    #: Seconds ``/readyz`` reuses its last probe of the backends before probing again.
    readiness_cache_seconds: float = Field(5.0, ge=0, le=300)
    #: TLS in ``zengine serve`` (hypercorn only): PEM certificate chain and its private key,
    #: relative to the config file. Unset: plain HTTP (put TLS in a reverse proxy).
    tls_certificate: Path | None = None
    tls_key: SecretFile | None = None
    #: PEM CA bundle: when set, every client must present a certificate it signed.
    tls_client_ca: Path | None = None
    #: Offer HTTP/2 (ALPN ``h2``) on the TLS port; HTTP/1.1 only when false.
    tls_http2: bool = False

    @model_validator(mode="after")
    def _tls_pairs(self) -> ServerSettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together: set both or neither")
        if self.tls_client_ca is not None and self.tls_certificate is None:
            raise ValueError("tls_client_ca needs tls_certificate and tls_key")
        return self

    @field_validator("paths")
    @classmethod
    def _paths_absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"path {path!r} must start with '/'")
        return value


class RequestSettings(_Model):
    """Zoiper only substitutes values, so operators choose the parameter names."""

    username_params: tuple[str, ...] = ("username", "user", "u")
    password_params: tuple[str, ...] = ("password", "pass", "p")
    version_params: tuple[str, ...] = ("version", "v")
    format_params: tuple[str, ...] = ("format",)
    #: Form semantics (a ``+`` in the query is a space), as browsers and Zoiper's URL encoding
    #: produce; ``false`` for apps that put a raw ``+`` (a password ``a+b``) in the query.
    plus_is_space: bool = True


class ClientSettings(_Model):
    #: What a request without a version gets: the newest mobile format, or legacy 1.0.
    no_version: Literal["newest", "legacy"] = "newest"
    #: Paths that serve the Zoiper5 desktop family.
    desktop_paths: tuple[str, ...] = ("/desktop",)
    #: Who gets ``401`` + ``WWW-Authenticate: Basic``: ``desktop`` (requests without
    #: credentials on desktop paths, failed Basic logins anywhere), ``everywhere`` (requests
    #: without credentials on every path too) or ``off``.
    basic_challenge: Literal["desktop", "everywhere", "off"] = "desktop"
    #: The realm of the Basic challenge (Zoiper5 may show it in its login prompt).
    basic_realm: str = Field("zengine", min_length=1, max_length=100)

    @field_validator("basic_realm")
    @classmethod
    def _realm_quotable(cls, value: str) -> str:
        # It goes into a quoted-string of a response header: printable ASCII (header bytes
        # are ISO-8859-1 at best), and nothing that could end the string.
        if any(ch in '"\\' or not (ch.isascii() and ch.isprintable()) for ch in value):
            raise ValueError("the realm must be printable ASCII without quotes or "
                             "backslashes")
        return value


class ErrorStatusSettings(_Model):
    """HTTP status per error kind. Zoiper shows the ``<error>`` text for 200 responses and keeps
    its existing configuration on 4xx/5xx."""

    bad_request: int = Field(400, ge=200, le=599)
    missing_credentials: int = Field(200, ge=200, le=599)
    wrong_login: int = Field(200, ge=200, le=599)
    bad_version: int = Field(200, ge=200, le=599)
    no_accounts: int = Field(200, ge=200, le=599)
    backend_unavailable: int = Field(503, ge=200, le=599)
    account_data: int = Field(500, ge=200, le=599)
    internal: int = Field(500, ge=200, le=599)
    #: Locked out or rate-limited before any password check (sent with ``Retry-After``).
    too_many_attempts: int = Field(429, ge=200, le=599)
    #: The address may not log in on this path (allow/deny lists).
    access_denied: int = Field(403, ge=200, le=599)
    #: Password verification pool and queue full (sent with ``Retry-After``).
    overloaded: int = Field(503, ge=200, le=599)


class ErrorSettings(_Model):
    status: ErrorStatusSettings = ErrorStatusSettings()


class LoggingSettings(_Model):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class AuthSettings(_Model):
    #: Authentication backends in the order they are asked; empty means every loaded backend.
    chain: tuple[str, ...] = ()
    #: Other backends whose accounts a backend's logins get, e.g. ``{ldap = ["sql"]}``: log in
    #: by LDAP, accounts from SQL. Without it a backend only serves its own logins, so two
    #: backends that both know "alice" never mix her accounts.
    account_sources: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: A failed login's response is held until this many milliseconds have passed since the
    #: request arrived, so its timing tells nothing about which backend knew the user or how
    #: it checked the password; it also slows password guessing. Successful logins are not
    #: delayed.
    failure_floor_ms: int = Field(400, ge=0, le=10000)


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
              "document", "defaults", "profiles", "default_profile", "plugins"}


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
        base_dir=base_dir or Path.cwd(),
        source=source,
        env_sources=env,
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
