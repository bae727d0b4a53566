"""The settings models of zengine's own tables: ``[server]``, ``[request]``, ``[clients]``,
``[errors]``, ``[logging]`` and ``[auth]``, plus :data:`SecretFile` for plugins' models.

They live apart from :mod:`zengine.settings` (which loads and merges the configuration) to keep
each module small; :mod:`zengine.settings` re-exports every name, so plugins import from there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from zengine.errors import ConfigError


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
    #: Answer a fully cached returning login on the event loop (see docs/benchmarks.md);
    #: ``false`` sends every request through the worker-thread path.
    fast_path: bool = True
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

    #: File ``zengine serve`` writes its process id to (removed at exit), for ``zengine reload``;
    #: relative to the config file. Unset: no file (``kill -HUP`` / ``systemctl reload`` work).
    pid_file: Path | None = None
    #: Seconds ``/readyz`` reuses its last probe of the backends before probing again.
    readiness_cache_seconds: float = Field(5.0, ge=0, le=300)
    #: What a tenant's own backend (``[tenants.<name>.plugins.*]``) not being ready does to
    #: ``/readyz``: ``fail`` answers 503, as for a global one; ``report`` lists it and answers
    #: 200, so one customer's dead directory does not take every instance, and so every
    #: other tenant, out of the load balancer (all instances share that directory).
    readiness_tenants: Literal["fail", "report"] = "fail"
    #: TLS in ``zengine serve`` (every engine): PEM certificate chain and its private key,
    #: relative to the config file. Unset: plain HTTP (put TLS in a reverse proxy).
    tls_certificate: Path | None = None
    tls_key: SecretFile | None = None
    #: PEM CA bundle: when set, every client must present a certificate it signed.
    tls_client_ca: Path | None = None
    #: Offer HTTP/2 (ALPN ``h2``) on the TLS port (hypercorn, granian; uvicorn refuses it);
    #: HTTP/1.1 only when false.
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


def server_option(name: str, value: int) -> int:
    """A command-line value for a ``[server]`` key (``serve --port``, ``init --port``), held
    to that key's bounds: past them the engine failed with a traceback (port), or the value
    was ignored (workers 0)."""
    field = ServerSettings.model_fields[name]
    try:
        TypeAdapter(Annotated[(int, *field.metadata)]).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(f"--{name} {value}: {exc.errors()[0]['msg']}") from None
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
