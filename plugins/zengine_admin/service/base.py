"""What every admin operation shares: the :class:`Actor`, the runtime it works on
(:func:`scoped`), the audit line, and the backend helpers that turn a backend's refusal into
a problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from zengine.errors import BackendUnavailable
from zengine.models import AuditEvent, Identity
from zengine_admin.keys import SCOPE_RANK, ApiKey, Scope
from zengine_admin.problems import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Problem,
    ReadOnly,
    Unavailable,
)
from zengine_admin.settings import NAME

if TYPE_CHECKING:
    from zengine.runtime import Runtime
    from zengine_sql.state import SqlState


R = TypeVar("R")
P = ParamSpec("P")
MASK = "********"


@dataclass(frozen=True)
class Actor:
    """Who asks: the audit trail's "who", and what they may see and do."""

    #: The API key's name, or the console user's login.
    name: str
    scope: Scope
    #: The one tenant this actor may see; ``None`` for every tenant.
    tenant: str | None
    #: The real client address (``[server] trusted_proxies`` applied).
    client_addr: str
    #: ``apikey`` or ``console``: how the actor proved who it is.
    via: str = "apikey"
    #: The tenant whose runtime (users, backends, guard, tokens) an operation works on, for
    #: an actor that may see every tenant (``[tenants]``; ``""``: the global one). A
    #: tenant-bound actor always works on its own tenant. The API sets it from ``?tenant=``;
    #: the console from its tenant picker (``dataclasses.replace(actor, target=name)``).
    target: str = ""

    @classmethod
    def from_key(cls, key: ApiKey, client_addr: str, via: str = "apikey") -> Actor:
        return cls(name=key.name, scope=key.scope, tenant=key.tenant,
                   client_addr=client_addr, via=via)

    def require(self, scope: Scope) -> None:
        if SCOPE_RANK[self.scope] < SCOPE_RANK[scope]:
            raise Forbidden(f"this needs an API key with scope {scope!r} (this key has "
                            f"{self.scope!r})")

    def sees(self, tenant: str | None) -> bool:
        """Whether a user (or entry) of ``tenant`` is this actor's to see; one without a
        tenant of its own belongs to the tenant runtime it was found in."""
        return self.tenant is None or (tenant or self.target) == self.tenant


def _scope(runtime: Runtime, actor: Actor) -> tuple[Runtime, Actor]:
    """The runtime an operation works on, and the actor as seen from it.

    A configured tenant (``[tenants.<name>]``) has a runtime of its own: its users file,
    directory, database, guard and tokens. A tenant name that is not configured (the
    tenant rows of the SQL own schema, or the ``tenant`` of a static user) narrows what the
    global runtime shows instead, exactly as a key bound to that tenant would see it.
    """
    root = runtime.for_tenant("") or runtime
    wanted = actor.tenant if actor.tenant is not None else actor.target
    if wanted == "":
        return root, replace(actor, target="")
    tenant_runtime = root.for_tenant(wanted)
    if tenant_runtime is not None:
        return tenant_runtime, replace(actor, target=wanted)
    return root, replace(actor, tenant=wanted, target="")


def scoped(fn: Callable[Concatenate[Runtime, Actor, P], R]) -> Callable[
        Concatenate[Runtime, Actor, P], R]:
    """Run ``fn`` on the runtime and actor :func:`_scope` picks (idempotent)."""

    @wraps(fn)
    def run(runtime: Runtime, actor: Actor, /, *args: P.args, **kwargs: P.kwargs) -> R:
        scoped_runtime, scoped_actor = _scope(runtime, actor)
        return fn(scoped_runtime, scoped_actor, *args, **kwargs)

    return run


def audit(runtime: Runtime, actor: Actor, what: str, outcome: str = "ok", *,
          username: str | None = None, detail: str = "") -> None:
    """An admin action for the audit trail: who (the key), what, from where."""
    runtime.hooks.audit(AuditEvent(
        event=f"admin.{what}", outcome=outcome, username=username, backend=NAME,
        client_addr=actor.client_addr,
        detail=f"actor={actor.name} via={actor.via}" + (f" {detail}" if detail else "")),
        runtime)


def backend_errors(step: Callable[[], R]) -> R:
    try:
        return step()
    except BackendUnavailable as exc:
        raise Unavailable(exc.public_message) from None


# -- backends ---------------------------------------------------------------------------

def sql_state(runtime: Runtime) -> SqlState | None:
    from zengine_sql.state import SqlState

    state = runtime.state.get("sql")
    return state if isinstance(state, SqlState) else None


def sql_own(runtime: Runtime) -> SqlState | None:
    state = sql_state(runtime)
    return state if state is not None and state.mapping is None else None


def writable(runtime: Runtime) -> SqlState:
    state = sql_own(runtime)
    if state is None:
        raise ReadOnly("users are read-only here: only the SQL backend's own schema "
                       "([plugins.sql] url, mode = \"own\") can be changed through the API; "
                       "static files, LDAP and mapped PBX tables are managed at their source")
    return state


def static_users(runtime: Runtime) -> dict[str, Any]:
    users = runtime.state.get("static")
    return users if isinstance(users, dict) else {}


def admin_error(exc: Exception) -> Problem:
    """The SQL admin layer's refusal as a problem naming the field."""
    from zengine_sql import specs

    text = str(exc)
    if isinstance(exc, specs.UnknownUser):
        return NotFound(text)
    if isinstance(exc, specs.Exists):
        return Conflict(text)
    field = getattr(exc, "field", None)
    return Invalid(field, text, whole=text) if field else Problem(text)


def sql_call(step: Callable[[], R]) -> R:
    from zengine_sql import specs

    try:
        return backend_errors(step)
    except specs.AdminError as exc:
        raise admin_error(exc) from None


def tenant_of(runtime: Runtime, stored: str | None) -> str | None:
    """The tenant a user is shown under: a configured tenant's runtime serves only its own
    users (its users file or database rows need no ``tenant`` of their own), so its name."""
    return runtime.tenant or stored


def find_identity(runtime: Runtime, username: str) -> Identity | None:
    return backend_errors(lambda: runtime.hooks.find_identity(
        username, runtime, runtime.settings.auth.chain))
