"""Which tenant a request is for: the one function every request path calls
(:func:`resolve_tenant`), the built-in chain behind it, and the ``/t/<key>/`` path mask.

The chain (``[tenants] resolve``): the ``Host`` header (exact names, then ``*.domain``
wildcards, the longest first) → a path key (``/t/<key>/id.php``) → a ``user@tenant`` login
suffix → ``[tenants] default``. A plugin's :func:`~zengine.hookspecs.zengine_resolve_tenant`
is asked before all of them. A request no method places, a path key that matches no tenant and
a name a plugin gives that is not configured all become :data:`UNKNOWN_TENANT`, which the
pipeline answers exactly like a wrong login (the guard counts it), so tenants cannot be
enumerated.

Path keys are compared as keyed digests (HMAC-SHA256 under ``[tenants] path_key_secret``):
the configuration holds no key, and a lookup by digest leaks nothing about a near miss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from zengine.errors import ConfigError
from zengine.models import UNKNOWN_TENANT, Credentials, ProvisionRequest
from zengine.tenantconfig import TenantsConfig

if TYPE_CHECKING:
    from zengine.runtime import Runtime
    from zengine.settings import Settings

#: ``/t/<key>/rest``: the key is one path segment of the URL-safe base64 alphabet.
PATH_KEY_PREFIX = "/t/"
#: What the logs, the router and plugins see instead of the key.
MASKED_SEGMENT = "~"
#: At least 128 bits: 22 characters of URL-safe base64.
MIN_KEY_CHARS = 22
_KEY = re.compile(rf"[A-Za-z0-9_-]{{{MIN_KEY_CHARS},128}}", re.ASCII)
#: Scope key the mask leaves the secret under, for the endpoint.
SCOPE_KEY = "zengine.path_key"


def new_path_key() -> str:
    """A fresh path key: 256 bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def key_digest(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode("ascii"), hashlib.sha256).hexdigest()


def load_key_secret(settings: Settings) -> bytes | None:
    from zengine.settings import resolve_secret

    own = settings.tenants.settings
    value = resolve_secret(own.path_key_secret, own.path_key_secret_file, settings,
                           "[tenants] path_key_secret")
    if value is None:
        return None
    text = value.get_secret_value().strip()
    if len(text) < 32:
        raise ConfigError("[tenants] path_key_secret must be at least 32 characters; make one "
                          "with `zengine make-secret`")
    return text.encode("utf-8")


class TenantResolver:
    """The built-in chain's lookups, built once from the settings (no work per request but
    the lookups themselves)."""

    def __init__(self, settings: Settings) -> None:
        config: TenantsConfig = settings.tenants
        self.enabled = config.enabled
        self.order = config.settings.resolve
        self.default = config.settings.default
        self.names = frozenset(config.tenants)
        self.exact: dict[str, str] = {}
        self.wildcards: list[tuple[str, str]] = []
        self.suffixes: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        for tenant in config.tenants.values():
            for host in tenant.keys.hosts:
                if host.startswith("*."):
                    self.wildcards.append((host[1:], tenant.name))
                else:
                    self.exact[host] = tenant.name
            for suffix in tenant.suffixes:
                self.suffixes[suffix] = tenant.name
            for digest in tenant.keys.path_keys:
                self.digests[digest] = tenant.name
        # The most specific wildcard wins: *.eu.example.com before *.example.com.
        self.wildcards.sort(key=lambda item: -len(item[0]))
        self.secret = load_key_secret(settings) if self.digests else None
        self._methods: dict[str, Callable[[ProvisionRequest], str | None]] = {
            "host": self.by_host, "path_key": self.by_path_key,
            "login_suffix": self.by_suffix, "default": self.by_default,
        }

    def by_host(self, request: ProvisionRequest) -> str | None:
        host = _host_name(request.headers.get("host", ""))
        if not host:
            return None
        found = self.exact.get(host)
        if found is not None:
            return found
        for suffix, name in self.wildcards:
            if host.endswith(suffix) and len(host) > len(suffix):
                return name
        return None

    def by_path_key(self, request: ProvisionRequest) -> str | None:
        if request.path_key is None:
            return None
        key = request.path_key.get_secret_value()
        # A key that names no tenant is refused, never passed down the chain: the phone
        # asked for one tenant, and a default must not answer in its place.
        if self.secret is None or not _KEY.fullmatch(key):
            return UNKNOWN_TENANT
        return self.digests.get(key_digest(self.secret, key), UNKNOWN_TENANT)

    def by_suffix(self, request: ProvisionRequest) -> str | None:
        suffix = _suffix(request.credentials)
        return self.suffixes.get(suffix) if suffix is not None else None

    def by_default(self, request: ProvisionRequest) -> str | None:
        return self.default if self.default is not None else UNKNOWN_TENANT

    def chain(self, request: ProvisionRequest) -> str:
        for method in self.order:
            found = self._methods[method](request)
            if found is not None:
                return found
        return UNKNOWN_TENANT

    def finish(self, request: ProvisionRequest, tenant: str) -> ProvisionRequest:
        """The request with its tenant, and ``alice@acme`` logging in as ``alice`` when the
        suffix names the tenant the request was resolved to (whichever method decided)."""
        credentials = request.credentials
        suffix = _suffix(credentials)
        if (credentials is not None and suffix is not None and tenant != UNKNOWN_TENANT
                and self.suffixes.get(suffix) == tenant):
            username = credentials.username.rpartition("@")[0]
            credentials = dataclasses.replace(credentials, username=username)
        return dataclasses.replace(request, tenant=tenant, credentials=credentials)


def _host_name(header: str) -> str:
    host = header.strip().lower()
    if host.startswith("["):
        return ""  # an IPv6 literal names no tenant
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        host = name
    return host.rstrip(".")


def _suffix(credentials: Credentials | None) -> str | None:
    if credentials is None or "@" not in credentials.username:
        return None
    user, _, suffix = credentials.username.rpartition("@")
    return suffix.lower() if user else None


def resolve_tenant(request: ProvisionRequest, runtime: Runtime) -> ProvisionRequest:
    """Decide ``request``'s tenant: the returned request carries it in ``tenant`` (and a
    login suffix that named it is gone from the username). Every path that serves a
    provisioning request calls this, so they all agree; pick the runtime with
    :func:`runtime_for`. Without ``[tenants]`` the request is returned as it is (tenant ``""``).
    """
    root = runtime.root or runtime
    resolver = root.resolver
    if not resolver.enabled:
        return request
    named = root.hooks.resolve_tenant(request, root)
    if named is not None:
        tenant = named if named in resolver.names else UNKNOWN_TENANT
    else:
        tenant = resolver.chain(request)
    return resolver.finish(request, tenant)


def runtime_for(request: ProvisionRequest, runtime: Runtime) -> Runtime:
    """The runtime that serves a resolved request: its tenant's, or the global one for
    :data:`UNKNOWN_TENANT` (which refuses it like a wrong login)."""
    return runtime.for_tenant(request.tenant) or (runtime.root or runtime)


class PathKeyMask:
    """ASGI middleware: ``/t/<key>/id.php`` becomes ``/t/~/id.php`` in the scope before
    anything reads it, so no access log, request log, audit line or plugin sees the key; the
    key itself waits under :data:`SCOPE_KEY` for the endpoint. Engines that log from the
    scope (hypercorn, uvicorn) log the masked path."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            mask_scope(scope)
        await self.app(scope, receive, send)


def mask_scope(scope: dict[str, Any]) -> None:
    path = scope.get("path", "")
    # Near misses too (``/t/<key>`` with nothing after it, ``//t/<key>/...``): they are
    # 404s, but the access log prints their path.
    stripped = path.lstrip("/")
    if not stripped.startswith(PATH_KEY_PREFIX[1:]):
        return
    lead = path[:len(path) - len(stripped)]
    key, sep, rest = stripped[len(PATH_KEY_PREFIX) - 1:].partition("/")
    if not key or key == MASKED_SEGMENT:
        return
    masked = f"{lead}{PATH_KEY_PREFIX[1:]}{MASKED_SEGMENT}{sep}{rest}"
    # The same dict the server logs from: change it in place.
    scope["path"] = masked
    scope["raw_path"] = masked.encode("ascii", "replace")
    scope[SCOPE_KEY] = key


def keyed_paths(paths: list[str]) -> list[str]:
    """The provisioning paths a path key prefixes (``/t/~/id.php``)."""
    return [f"{PATH_KEY_PREFIX}{MASKED_SEGMENT}{path}" for path in paths]


def describe(resolver: TenantResolver) -> Mapping[str, object]:
    """What ``check-config`` prints about the chain (never a digest)."""
    return {"resolve": list(resolver.order), "default": resolver.default,
            "tenants": sorted(resolver.names)}
