"""The value types that flow through the pipeline and the hooks.

Everything a hook receives is either frozen or owned by the current request, so a plugin cannot
change what another request sees.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Any

from pydantic import BaseModel, SecretStr

# ASCII digits only (``\d`` would accept full-width and Arabic-Indic digits); any size, so
# a far-future version is "newer than we know", not "unknown". Read as Zoiper's example server
# reads it (``ver_to_int``: major and minor, the rest ignored): components after the third and
# a suffix such as ``-beta`` are accepted and dropped, so ``1.2.3.4`` is 1.2 and ``1.14-beta``
# is 1.14. A suffix must start with one of ``- + _ ~``, so garbage such as ``1.x``, ``1e3`` or
# ``abc`` still fails.
_VERSION_RE = re.compile(
    r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.\d+)*"
    r"(?:[-+_~][0-9A-Za-z.+_~-]+)?\s*",
    re.ASCII)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A provisioning format version such as ``1.14``; a third component is kept but ignored
    when comparing formats, as Zoiper's own example server does. ``1`` is 1.0."""

    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"not a version: {text!r}")
        major, minor, patch = (int(part) if part else 0 for part in match.groups())
        return cls(major, minor, patch)

    @property
    def format_key(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.format_key < other.format_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.format_key == other.format_key

    def __hash__(self) -> int:
        return hash(self.format_key)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class ClientInfo:
    """Which document family and version a client gets."""

    family: str
    version: Version
    #: What the client asked for (``None`` when it sent no version); for logs and audit.
    requested: str | None = None


@dataclass(frozen=True)
class Credentials:
    username: str
    password: SecretStr
    #: ``"query"`` (URL or form parameters) or ``"basic"`` (HTTP Basic authentication).
    source: str = "query"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=SecretStr('**********'))"


@dataclass(frozen=True)
class ProvisionRequest:
    """A parsed provisioning request; no Starlette type leaks into the pipeline."""

    path: str
    #: Every parameter that appeared once, credentials included: treat as secret-bearing.
    params: Mapping[str, str]
    headers: Mapping[str, str]
    client_addr: str
    credentials: Credentials | None
    version_raw: str | None
    #: The tenant the request was resolved to (:func:`zengine.tenancy.resolve_tenant`):
    #: ``""`` without ``[tenants]``; :data:`UNKNOWN_TENANT` for one that is refused.
    tenant: str = ""
    #: The secret of a ``/t/<key>/...`` path (``path`` then shows ``/t/~/...``); never log it.
    path_key: SecretStr | None = None

    def __repr__(self) -> str:
        return (f"ProvisionRequest(path={self.path!r}, client_addr={self.client_addr!r}, "
                f"tenant={self.tenant!r})")


#: The tenant of a request no tenant claims, or that names one that does not exist: refused
#: with a wrong login's answer. Not a valid tenant name, so no configured tenant can be it.
UNKNOWN_TENANT = "?"


@dataclass(frozen=True)
class Identity:
    """Who logged in, as decided by the authentication backend that accepted the login."""

    username: str
    backend: str
    profile: str | None = None
    display_name: str | None = None
    tenant: str | None = None
    groups: tuple[str, ...] = ()
    #: Per-user overrides of catalogue fields (nested like the XML, e.g. ``{"stun": {...}}``).
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: Extra non-secret attributes other plugins may key on (e.g. a directory DN).
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A backend owns this user and the password is wrong: the chain stops here."""

    backend: str
    reason: str = "wrong password"


AuthResult = Identity | Rejected


@dataclass(frozen=True)
class Account:
    """One SIP account, in backend-neutral terms. ``overrides`` may set any catalogue field."""

    ident: str
    sip_username: str
    sip_password: SecretStr
    domain: str
    name: str | None = None
    auth_username: str | None = None
    caller_id: str | None = None
    outbound_proxy: str | None = None
    transport: str | None = None
    profile: str | None = None
    token: SecretStr | None = None
    source: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Account(ident={self.ident!r}, sip_username={self.sip_username!r}, "
                f"source={self.source!r})")


@dataclass(frozen=True)
class ResolvedAccount:
    """An account with every catalogue field resolved: defaults, profile, user, account."""

    account: Account
    profile: str | None
    #: Catalogue path relative to ``account`` (``"stun/use_stun"``) -> typed value.
    values: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"ResolvedAccount(ident={self.account.ident!r}, profile={self.profile!r})"


@dataclass
class Element:
    """A node of a document before serialisation. ``text`` is the raw value: the serialiser
    escapes it exactly once."""

    tag: str
    text: str | None = None
    children: list[Element] = field(default_factory=list)

    def child(self, tag: str) -> Element | None:
        for node in self.children:
            if node.tag == tag:
                return node
        return None

    def find(self, path: str) -> Element | None:
        node: Element | None = self
        for part in path.split("/"):
            if node is None:
                return None
            node = node.child(part)
        return node

    def remove(self, path: str) -> bool:
        parent_path, _, tag = path.rpartition("/")
        parent = self.find(parent_path) if parent_path else self
        if parent is None:
            return False
        before = len(parent.children)
        parent.children = [node for node in parent.children if node.tag != tag]
        return len(parent.children) != before

    def rename(self, path: str, new_tag: str) -> bool:
        node = self.find(path)
        if node is None:
            return False
        node.tag = new_tag
        return True

    def iter(self) -> Iterator[Element]:
        yield self
        for node in self.children:
            yield from node.iter()


@dataclass
class Document:
    """The document a client will receive, while hooks still may change it."""

    root: Element
    client: ClientInfo
    #: Each account element paired with the account it was built from, for post-processing.
    accounts: list[tuple[Element, ResolvedAccount]] = field(default_factory=list)


@dataclass(frozen=True)
class Transform:
    """One step that turns a document of ``family`` at ``version`` into the previous version's.

    Steps run newest first, like database migrations run backwards: a client at 1.10 gets every
    step whose ``version`` is newer than 1.10 applied, in descending order.
    """

    family: str
    version: Version
    apply: Callable[[Document], None]
    description: str = ""


@dataclass(frozen=True)
class AuditEvent:
    """What happened, for the audit trail. Never carries a secret."""

    event: str
    outcome: str
    username: str | None = None
    backend: str | None = None
    client_addr: str | None = None
    family: str | None = None
    version: str | None = None
    account_count: int = 0
    detail: str | None = None
    #: The request's tenant (``""`` without ``[tenants]``; ``"?"`` for an unknown one).
    tenant: str = ""


@dataclass(frozen=True)
class PluginSettingsSpec:
    """A plugin's ``[plugins.<name>]`` table and the pydantic model that validates it."""

    name: str
    model: type[BaseModel]


@dataclass(frozen=True)
class Readiness:
    """One backend's answer to :func:`~zengine.hookspecs.zengine_readiness`.

    ``reason`` is shown to anyone who can reach ``/readyz``: a short phrase naming the cause
    ("database unreachable", "schema not at head"), never a secret, a URL or a host. ``detail``
    is for the operator (``check-config --probe`` and the log): the driver's message, with
    credentials removed.
    """

    backend: str
    ready: bool
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Command:
    """A ``zengine`` sub-command contributed by a plugin."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    #: Called with the parsed arguments and the started runtime; returns the exit status.
    run: Callable[[argparse.Namespace, Any], int]


@dataclass(frozen=True)
class Abstain:
    """Returned by :func:`~zengine.hookspecs.zengine_authenticate` instead of ``None`` when the
    user is not this backend's *and* the backend has already spent what a wrong password
    costs it (LDAP: one search and one bind as a DN that does not exist). When the last
    backend asked answers this, the core skips its dummy argon2 verification, so an unknown
    user costs exactly what a wrong password costs on that chain."""

    backend: str


@dataclass(frozen=True)
class LoginAttempt:
    """One login about to be checked, as the login guard hooks see it.

    ``secret`` is the password (or token) tried: never log or store it; derive a keyed digest
    if you need to tell attempts apart.
    """

    username: str
    secret: SecretStr
    #: The real client address (``[server] trusted_proxies`` applied).
    client_addr: str
    #: Tenant the login is for (``""`` without ``[tenants]``; :data:`UNKNOWN_TENANT` for a
    #: request refused as an unknown tenant, whose guessing a guard should count too).
    tenant: str = ""
    path: str = ""
    #: ``"password"`` for provisioning logins; other plugins use their own kinds
    #: (``"token"``, ``"portal"``) so a guard can keep separate limits.
    kind: str = "password"

    def __repr__(self) -> str:
        return (f"LoginAttempt(username={self.username!r}, client_addr={self.client_addr!r}, "
                f"tenant={self.tenant!r}, kind={self.kind!r})")


@dataclass(frozen=True)
class LoginResult:
    """What the authentication chain decided for a :class:`LoginAttempt`."""

    accepted: bool
    identity: Identity | None = None
    #: The backend that accepted or rejected; ``None`` when no backend knew the user.
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One provisioning request, answered: what :func:`~zengine.hookspecs.zengine_request_finished`
    observes. Never a username, an address, a password or a token: counting needs none."""

    #: The provisioning path asked (one of ``[server] paths`` / ``[clients] desktop_paths``),
    #: or a plugin route's template (``/api/v1/users/{username}``), never the path asked.
    path: str
    status: int
    #: ``served``, ``rejected``, ``unavailable``, an error kind (``bad_request``,
    #: ``missing_credentials``, ``too_many_attempts``, ``overloaded``, ...), ``error`` for a
    #: bug, or the HTTP layer's own ``deadline`` (503 past ``[server] backend_timeout``),
    #: ``body_timeout`` and ``body_incomplete`` (408) and ``method`` (405 for ``HEAD``).
    outcome: str
    #: The client family detected (``mobile``, ``desktop``, ...); ``None`` before detection.
    family: str | None
    #: Seconds from the request's arrival to its answer, the failure floor included: what the
    #: client waited.
    seconds: float
    #: The tenant the request was resolved to (``""`` without ``[tenants]``,
    #: :data:`UNKNOWN_TENANT` for one refused, ``""`` too when the answer came before
    #: resolution).
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """Something countable the core or a plugin did, for
    :func:`~zengine.hookspecs.zengine_observe`. Every field is a bounded value chosen by code,
    never by a client: no username, address, password or token.

    The names the core and built-in plugins report (docs/plugins.md lists each one's fields):
    ``login``, ``backend.authenticate``, ``backend.load_accounts``, ``password.argon2``,
    ``password.bind``, ``login_cache``, ``document_cache``, ``store.error``. A plugin's own
    names start with its plugin name and a dot.
    """

    name: str
    #: What happened: ``accepted``, ``hit``, ``dummy``, an error kind, ... (per ``name``).
    result: str | None = None
    #: The plugin (backend or store kind) it concerns, when there is one.
    backend: str | None = None
    #: How long it took, when it was timed.
    seconds: float | None = None
