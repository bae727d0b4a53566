"""The admin service: typed operations the REST API and the web console both call.

**For the console** (and any other in-process caller): build an :class:`Actor` for whoever
signed in (``Actor.from_key`` for an API key the console checked with
:func:`zengine_admin.auth.check_key`; ``Actor(name=..., scope="write", tenant=None,
client_addr=...)`` for a member of the configured LDAP admin group), then call the functions
below with ``(runtime, actor, ...)``. Every function is synchronous and may block on a
database or directory: call it from a worker thread (``anyio.to_thread.run_sync``). Each one
enforces the actor's scope and tenant itself, validates its input with the same rules as the
CLI (``zengine_sql.admin``), audits what it changes (who = ``actor.name``, from where =
``actor.client_addr``), and raises a :class:`zengine_admin.problems.Problem` subclass on
refusal (``problem.status``, ``problem.detail``, ``problem.errors`` naming the fields): show
``detail``, never a traceback.

* users: :func:`find_users`, :func:`user_detail`, :func:`create_user`, :func:`update_user`,
  :func:`set_password`, :func:`delete_user`, :func:`add_account`, :func:`set_sip_password`,
  :func:`delete_account`
* :func:`preview` (the document a user's phone gets, passwords masked)
* :func:`lockouts`, :func:`clear_lockouts`
* :func:`issue_token` (the token, its link and the QR as SVG, once), :func:`list_tokens`,
  :func:`revoke_token`, :func:`revoke_user_tokens`
* :func:`audit_events` (stored audit events, paged by cursor)
* :func:`tenants`, :func:`profiles`, :func:`plugins`, :func:`status`

Answers are the pydantic models of :mod:`zengine_admin.models`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial, wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from lxml import etree

from zengine import __version__
from zengine.errors import BackendUnavailable, BadVersion, LoginFailed, ZengineError
from zengine.models import AuditEvent, Identity
from zengine_admin.keys import SCOPE_RANK, ApiKey, Scope
from zengine_admin.models import (
    AccountCreate,
    AccountView,
    AuditEntry,
    AuditPageView,
    BackendStatus,
    Cleared,
    IssuedTokenView,
    LockoutView,
    PluginView,
    PreviewView,
    ProfileView,
    Revoked,
    StatusView,
    TenantView,
    TokenIssue,
    TokenPage,
    TokenView,
    UserCreate,
    UserDetail,
    UserPage,
    UserSummary,
    UserUpdate,
)
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


def _backend_errors(step: Callable[[], R]) -> R:
    try:
        return step()
    except BackendUnavailable as exc:
        raise Unavailable(exc.public_message) from None


# -- backends ---------------------------------------------------------------------------

def _sql(runtime: Runtime) -> SqlState | None:
    from zengine_sql.state import SqlState

    state = runtime.state.get("sql")
    return state if isinstance(state, SqlState) else None


def _sql_own(runtime: Runtime) -> SqlState | None:
    state = _sql(runtime)
    return state if state is not None and state.mapping is None else None


def _writable(runtime: Runtime) -> SqlState:
    state = _sql_own(runtime)
    if state is None:
        raise ReadOnly("users are read-only here: only the SQL backend's own schema "
                       "([plugins.sql] url, mode = \"own\") can be changed through the API; "
                       "static files, LDAP and mapped PBX tables are managed at their source")
    return state


def _static_users(runtime: Runtime) -> dict[str, Any]:
    users = runtime.state.get("static")
    return users if isinstance(users, dict) else {}


def _admin_error(exc: Exception) -> Problem:
    """The SQL admin layer's refusal as a problem naming the field."""
    from zengine_sql import admin

    text = str(exc)
    if isinstance(exc, admin.UnknownUser):
        return NotFound(text)
    if isinstance(exc, admin.Exists):
        return Conflict(text)
    field = getattr(exc, "field", None)
    return Invalid(field, text, whole=text) if field else Problem(text)


def _sql_call(step: Callable[[], R]) -> R:
    from zengine_sql import admin

    try:
        return _backend_errors(step)
    except admin.AdminError as exc:
        raise _admin_error(exc) from None


# -- users ------------------------------------------------------------------------------

def _tenant_of(runtime: Runtime, stored: str | None) -> str | None:
    """The tenant a user is shown under: a configured tenant's runtime serves only its own
    users (its users file or database rows need no ``tenant`` of their own), so its name."""
    return runtime.tenant or stored


def _summary_from_sql(runtime: Runtime, row: dict[str, Any]) -> UserSummary:
    return UserSummary(username=row["username"], backend="sql",
                       tenant=_tenant_of(runtime, row["tenant"]),
                       display_name=row["display_name"], profile=row["profile"],
                       enabled=bool(row["enabled"]), writable=True, accounts=row["accounts"])


def _static_summary(runtime: Runtime, username: str, user: Any) -> UserSummary:
    return UserSummary(username=username, backend="static",
                       tenant=_tenant_of(runtime, user.tenant),
                       display_name=user.display_name, profile=user.profile,
                       enabled=user.enabled, writable=False, accounts=len(user.accounts))


def _listable(runtime: Runtime, actor: Actor, query: str) -> Iterator[UserSummary]:
    """Users of the backends that can list theirs, in chain order, filtered."""
    from zengine_sql import admin

    needle = query.casefold()
    for backend in runtime.settings.auth.chain:
        if backend == "sql":
            state = _sql_own(runtime)
            if state is None:
                continue
            rows = _sql_call(partial(admin.list_users, state, actor.tenant, search=query))
            yield from (_summary_from_sql(runtime, r) for r in rows)
        elif backend == "static":
            for username, user in sorted(_static_users(runtime).items()):
                if needle in username.casefold() and actor.sees(user.tenant):
                    yield _static_summary(runtime, username, user)


@scoped
def find_users(runtime: Runtime, actor: Actor, query: str = "", *, offset: int = 0,
               limit: int = 50) -> UserPage:
    """Users whose name contains ``query`` (case-insensitive) in the SQL own schema and the
    static file; LDAP and mapped PBX tables cannot be listed, so there ``query`` must be the
    exact username (one directory or table lookup)."""
    actor.require("read")
    found: list[UserSummary] = list(_listable(runtime, actor, query))
    if query and not any(u.username == query for u in found):
        exact = _lookup(runtime, actor, query)
        if exact is not None:
            found.append(exact)
    return UserPage(items=found[offset:offset + limit], offset=offset, limit=limit,
                             total=len(found))


def _identity(runtime: Runtime, username: str) -> Identity | None:
    return _backend_errors(lambda: runtime.hooks.find_identity(
        username, runtime, runtime.settings.auth.chain))


def _lookup(runtime: Runtime, actor: Actor, username: str) -> UserSummary | None:
    identity = _identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        return None
    return UserSummary(username=identity.username, backend=identity.backend,
                       tenant=_tenant_of(runtime, identity.tenant),
                       display_name=identity.display_name,
                       profile=identity.profile, enabled=True,
                       writable=identity.backend == "sql" and _sql_own(runtime) is not None)


@scoped
def user_detail(runtime: Runtime, actor: Actor, username: str) -> UserDetail:
    """One user and their SIP accounts (never a password). A user the actor's tenant does
    not hold is "not found", exactly like a user nobody holds."""
    actor.require("read")
    from zengine_sql import admin

    state = _sql_own(runtime)
    if state is not None and "sql" in runtime.settings.auth.chain:
        try:
            doc = _backend_errors(lambda: admin.show_user(state, username, tenant=actor.tenant))
        except admin.AdminError:
            doc = None
        if doc is not None and actor.sees(doc["tenant"]):
            accounts = [AccountView(**{k: a[k] for k in AccountView.model_fields})
                        for a in doc["accounts"]]
            return UserDetail(username=doc["username"], backend="sql",
                              tenant=_tenant_of(runtime, doc["tenant"]),
                              display_name=doc["display_name"], profile=doc["profile"],
                              enabled=doc["enabled"], writable=True, accounts=len(accounts),
                              account_list=accounts,
                              has_password=doc["password_hash"] is not None,
                              overrides=doc["overrides"])
    static = _static_users(runtime).get(username)
    identity = _identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        raise NotFound(f"no user {username!r}")
    loaded = _backend_errors(lambda: runtime.hooks.load_accounts(identity, runtime))
    accounts = [AccountView(ident=a.ident, sip_username=a.sip_username, domain=a.domain,
                            name=a.name, auth_username=a.auth_username,
                            caller_id=a.caller_id, outbound_proxy=a.outbound_proxy,
                            transport=a.transport, profile=a.profile) for a in loaded]
    return UserDetail(username=identity.username, backend=identity.backend,
                      tenant=_tenant_of(runtime, identity.tenant),
                      display_name=identity.display_name,
                      profile=identity.profile,
                      enabled=static.enabled if static is not None else True,
                      writable=False, accounts=len(accounts), account_list=accounts,
                      has_password=True if static is not None else None,
                      overrides=dict(identity.overrides))


def _owned(runtime: Runtime, actor: Actor, state: SqlState, username: str) -> None:
    """The user exists in the own schema and in the actor's tenant (else 404, either way)."""
    from zengine_sql import admin

    try:
        doc = _backend_errors(lambda: admin.show_user(state, username, tenant=actor.tenant))
    except admin.AdminError:
        identity = _identity(runtime, username)
        if identity is not None and actor.sees(identity.tenant):
            raise ReadOnly(f"user {username!r} lives in the {identity.backend!r} backend, "
                           "which the API can read but not change") from None
        raise NotFound(f"no user {username!r}") from None
    if not actor.sees(doc["tenant"]):
        raise NotFound(f"no user {username!r}")


def _account_spec(body: AccountCreate, where: str) -> Any:
    from zengine_sql import admin

    optional = {name: getattr(body, name) for name in admin.ACCOUNT_OPTIONAL}
    return admin.AccountSpec(ident=body.ident, sip_username=body.sip_username,
                             sip_password=body.sip_password, domain=body.domain,
                             optional=optional, overrides=dict(body.overrides), where=where)


@scoped
def create_user(runtime: Runtime, actor: Actor, body: UserCreate) -> UserDetail:
    """A new user of the own schema, with accounts, through the CLI's write path."""
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    tenant = body.tenant if body.tenant is not None else actor.tenant
    if not actor.sees(tenant):
        raise Invalid("tenant", f"this API key may only create users of tenant "
                                f"{actor.tenant!r}")
    spec = admin.UserSpec(username=body.username, password=body.password,
                          display_name=body.display_name, profile=body.profile, tenant=tenant,
                          enabled=body.enabled, overrides=dict(body.overrides),
                          accounts=[_account_spec(a, f"accounts/{i}/")
                                    for i, a in enumerate(body.accounts)])

    def create() -> None:
        admin.check_overrides(spec.overrides, "overrides", account=False)
        for account in spec.accounts:
            admin.check_overrides(account.overrides, f"{account.where}overrides",
                                  account=True)
        admin.check_user(spec, runtime.settings.profiles)
        admin.add_user(state, spec)

    _sql_call(create)
    audit(runtime, actor, "user.created", username=body.username,
          detail=f"accounts={len(body.accounts)}")
    return user_detail(runtime, actor, body.username)


@scoped
def update_user(runtime: Runtime, actor: Actor, username: str, body: UserUpdate) -> UserDetail:
    """Change the fields ``body`` sets (display name, profile, enabled, overrides)."""
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    _owned(runtime, actor, state, username)
    changes = body.model_dump(exclude_unset=True)

    def update() -> None:
        if "overrides" in changes and changes["overrides"] is not None:
            admin.check_overrides(changes["overrides"], "overrides", account=False)
        enabled = changes.pop("enabled", None)
        if changes:
            admin.update_user(state, username, changes, runtime.settings.profiles,
                              tenant=actor.tenant)
        if enabled is not None:
            admin.set_enabled(state, username, enabled, tenant=actor.tenant)

    _sql_call(update)
    audit(runtime, actor, "user.updated", username=username,
          detail="fields=" + ",".join(sorted(body.model_dump(exclude_unset=True))))
    return user_detail(runtime, actor, username)


@scoped
def set_password(runtime: Runtime, actor: Actor, username: str, password: str | None) -> None:
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    _owned(runtime, actor, state, username)
    _sql_call(lambda: admin.set_password(state, username, password,
                                              tenant=actor.tenant))
    audit(runtime, actor, "user.password_set", username=username,
          detail="removed" if password is None else "")


@scoped
def delete_user(runtime: Runtime, actor: Actor, username: str) -> None:
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    _owned(runtime, actor, state, username)
    _sql_call(lambda: admin.delete_user(state, username, tenant=actor.tenant))
    audit(runtime, actor, "user.deleted", username=username)


@scoped
def add_account(runtime: Runtime, actor: Actor, username: str,
                body: AccountCreate) -> UserDetail:
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    _owned(runtime, actor, state, username)
    spec = _account_spec(body, "")

    def add() -> None:
        admin.check_overrides(spec.overrides, "overrides", account=True)
        admin.check_account(spec, runtime.settings.profiles)
        admin.add_account(state, username, spec, tenant=actor.tenant)

    _sql_call(add)
    audit(runtime, actor, "account.created", username=username, detail=f"ident={body.ident}")
    return user_detail(runtime, actor, username)


@scoped
def set_sip_password(runtime: Runtime, actor: Actor, username: str, ident: str,
                     password: str) -> None:
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    _owned(runtime, actor, state, username)
    try:
        _backend_errors(lambda: admin.set_sip_password(
            state, username, ident, password, tenant=actor.tenant))
    except admin.AdminError as exc:
        raise (NotFound(str(exc)) if "has no account" in str(exc)
               else _admin_error(exc)) from None
    audit(runtime, actor, "account.sip_password_set", username=username, detail=f"ident={ident}")


@scoped
def delete_account(runtime: Runtime, actor: Actor, username: str, ident: str) -> None:
    actor.require("write")
    from zengine_sql import admin

    state = _writable(runtime)
    _owned(runtime, actor, state, username)
    try:
        _backend_errors(lambda: admin.delete_account(state, username, ident,
                                                             tenant=actor.tenant))
    except admin.AdminError as exc:
        raise NotFound(str(exc)) from None
    audit(runtime, actor, "account.deleted", username=username, detail=f"ident={ident}")


# -- preview ----------------------------------------------------------------------------

def _mask(document: bytes) -> str:
    """Every password and token element's text replaced: the help desk sees the document's
    shape and settings, never a credential."""
    root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False,
                                                            no_network=True))
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if ("password" in tag or tag in ("token", "ha1")) and element.text:
            element.text = MASK
    return etree.tostring(root, encoding="unicode")


@scoped
def preview(runtime: Runtime, actor: Actor, username: str, *, family: str | None = None,
            version: str | None = None) -> PreviewView:
    """The document ``username``'s client of ``family``/``version`` gets (``zengine render``),
    passwords and tokens masked."""
    actor.require("read")
    from zengine.render import render_document

    identity = _identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        raise NotFound(f"no user {username!r}")
    try:
        body = render_document(runtime, username, version=version, family=family)
    except BadVersion as exc:
        raise Invalid("version", exc.public_message) from None
    except LoginFailed:
        raise NotFound(f"no user {username!r}") from None
    except BackendUnavailable as exc:
        raise Unavailable(exc.public_message) from None
    except ZengineError as exc:
        raise Problem(exc.public_message) from None
    if body.lstrip().startswith(b"<?xml") or body.lstrip().startswith(b"<"):
        text = _mask(body)
    else:
        text = MASK
    return PreviewView(username=username, family=family or "auto", version=version,
                       content_type="application/xml", document=text)


# -- lockouts ---------------------------------------------------------------------------

def _guard(runtime: Runtime) -> Any:
    guard = runtime.state.get("guard")
    if guard is None or not hasattr(guard, "state"):
        raise NotFound("the login guard is not running ([plugins.guard] enabled = false, "
                       "or the guard plugin is disabled)")
    return guard


@scoped
def lockouts(runtime: Runtime, actor: Actor) -> list[LockoutView]:
    """Accounts and addresses with failures in the guard's window, and how long each stays
    locked (what ``zengine lockouts list`` prints), in the actor's tenant."""
    actor.require("read")
    guard = _guard(runtime)
    entries = guard.state.entries(time.time())
    return [LockoutView(tenant=e.tenant, kind=e.kind, name=e.name, failures=e.failures,
                        locked_for=int(e.locked_for))
            for e in entries if actor.sees(e.tenant)]


@scoped
def clear_lockouts(runtime: Runtime, actor: Actor, name: str | None) -> Cleared:
    """Forget the failures and lockouts of ``name`` (a user or an address), or of everybody
    in the actor's tenant."""
    actor.require("write")
    guard = _guard(runtime)
    tenant = actor.tenant
    removed = guard.state.clear(name, tenant)
    audit(runtime, actor, "lockouts.cleared", username=name,
          detail=f"name={name or '*'} tenant={tenant if tenant is not None else '*'} "
                 f"removed={removed}")
    return Cleared(cleared=int(removed))


# -- tokens -----------------------------------------------------------------------------

def _tokens(runtime: Runtime) -> Any:
    from zengine_tokens.api import token_service

    try:
        return token_service(runtime)
    except RuntimeError:
        raise NotFound("the tokens plugin is not running") from None


def _token_tenant(runtime: Runtime, actor: Actor, username: str) -> str:
    identity = _identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        raise NotFound(f"no user {username!r}")
    # The runtime's tenant ("" for the global one): the endpoint redeems the token with that
    # tenant's users, never with another tenant's user of the same name.
    return runtime.tenant


def _token_view(info: Any) -> TokenView:
    return TokenView(id=info.id, username=info.username, account=info.account,
                     tenant=info.tenant, purpose=info.purpose, state=info.state,
                     created=info.created, expires=info.expires, max_uses=info.max_uses,
                     uses=info.uses, revoked=info.revoked, last_used=info.last_used,
                     last_used_addr=info.last_used_addr, issued_by=info.issued_by)


@scoped
def issue_token(runtime: Runtime, actor: Actor, body: TokenIssue) -> IssuedTokenView:
    """A one-time setup token for a user: the answer carries the token, its link and the QR
    (SVG) this once; only its digest is stored."""
    actor.require("tokens")
    from zengine_tokens.api import qr_svg

    service = _tokens(runtime)
    tenant = _token_tenant(runtime, actor, body.username)
    ttl = timedelta(seconds=body.ttl_seconds) if body.ttl_seconds is not None else None
    try:
        issued = _backend_errors(lambda: service.issue(
            body.username, tenant=tenant, account=body.account, ttl=ttl, uses=body.uses,
            revoke_older=not body.keep_older, actor=f"api:{actor.name}",
            client_addr=actor.client_addr))
    except ZengineError as exc:
        raise Invalid("account" if body.account else "username", exc.public_message) from None
    except ValueError as exc:
        raise Problem(str(exc)) from None
    return IssuedTokenView(id=issued.id, token=issued.token, username=issued.username,
                           account=issued.account, expires=issued.expires,
                           max_uses=issued.max_uses, link=issued.link,
                           qr_svg=qr_svg(issued.link) if issued.link else "")


@scoped
def list_tokens(runtime: Runtime, actor: Actor, username: str | None = None, *,
                offset: int = 0, limit: int = 50) -> TokenPage:
    """Tokens (id and state, never the token), newest first."""
    actor.require("tokens")
    service = _tokens(runtime)
    infos = _backend_errors(lambda: service.list(username, tenant=runtime.tenant))
    if actor.tenant is not None:
        tenants: dict[str, bool] = {}

        def visible(name: str) -> bool:
            if name not in tenants:
                identity = _identity(runtime, name)
                tenants[name] = identity is not None and actor.sees(identity.tenant)
            return tenants[name]

        infos = [i for i in infos if visible(i.username)]
    views = [_token_view(i) for i in infos]
    return TokenPage(items=views[offset:offset + limit], offset=offset, limit=limit,
                           total=len(views))


@scoped
def revoke_token(runtime: Runtime, actor: Actor, token_id: str) -> TokenView:
    actor.require("tokens")
    service = _tokens(runtime)
    listed = _backend_errors(lambda: service.list(None, tenant=runtime.tenant))
    info = next((i for i in listed if i.id == token_id), None)
    if info is None:
        raise NotFound(f"no token {token_id!r}")
    _token_tenant(runtime, actor, info.username)
    revoked = _backend_errors(lambda: service.revoke(
        token_id, tenant=runtime.tenant, actor=f"api:{actor.name}",
        client_addr=actor.client_addr))
    if revoked is None:
        raise Conflict(f"token {token_id!r} is already revoked")
    return _token_view(revoked)


@scoped
def revoke_user_tokens(runtime: Runtime, actor: Actor, username: str) -> Revoked:
    actor.require("tokens")
    service = _tokens(runtime)
    _token_tenant(runtime, actor, username)
    count = _backend_errors(lambda: service.revoke_user(
        username, tenant=runtime.tenant, actor=f"api:{actor.name}",
        client_addr=actor.client_addr))
    return Revoked(revoked=int(count))


# -- audit ------------------------------------------------------------------------------

def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@scoped
def audit_events(runtime: Runtime, actor: Actor, *, username: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 outcomes: str | None = None, events: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> AuditPageView:
    """Stored audit events, newest first, narrowed by user, time range (``since``
    inclusive, ``until`` exclusive; naive times are UTC), outcomes and events (comma-separated;
    an event ending in ``*`` is a prefix); ``cursor`` pages on. An actor bound to a tenant
    sees that tenant's events; an all-tenants actor every tenant's, or one tenant's with
    ``target`` (``?tenant=``)."""
    actor.require("read")
    from zengine_audit.api import AuditQuery, AuditStoreOff, BadCursor, audit_service

    root = runtime.for_tenant("") or runtime
    try:
        service = audit_service(root)
    except RuntimeError:
        raise NotFound("the audit plugin is not running") from None
    if actor.tenant is not None:
        tenant: str | None = actor.tenant
    else:
        tenant = actor.target or (None if runtime is root else runtime.tenant)
    try:
        query = AuditQuery(username=username, tenant=tenant, since=_aware(since),
                           until=_aware(until), outcomes=_split(outcomes),
                           events=_split(events), limit=limit, cursor=cursor)
        page = _backend_errors(lambda: service.query(query))
    except AuditStoreOff:
        raise NotFound("the audit store is off: set [plugins.audit] store to keep events "
                       "in a database") from None
    except BadCursor as exc:
        raise Invalid("cursor", str(exc)) from None
    except ValueError as exc:
        raise Problem(str(exc)) from None
    return AuditPageView(items=[AuditEntry(
        id=r.id, time=r.at, event=r.event, outcome=r.outcome, tenant=r.tenant,
        username=r.username, backend=r.backend, client_addr=r.client_addr, family=r.family,
        version=r.version, account_count=r.account_count, detail=r.detail)
        for r in page.records], next_cursor=page.next_cursor)


# -- tenants, profiles, plugins, status ---------------------------------------------------

def tenants(runtime: Runtime, actor: Actor) -> list[TenantView]:
    """The tenants zengine knows of: the configured ones (``[tenants.<name>]``, each with a
    runtime of its own), the tenant rows of the SQL own schema and the tenants the static
    file's users name. Read-only: tenants are configuration."""
    actor.require("read")
    from zengine_sql import admin

    root = runtime.for_tenant("") or runtime
    counts: dict[tuple[str, str], int | None] = {
        (name, "config"): None for name in root.tenants}
    state = _sql_own(root)
    if state is not None:
        for row in _sql_call(lambda: admin.list_tenants(state)):
            counts[(row["name"], "sql")] = int(row["users"])
    for user in _static_users(root).values():
        if user.tenant:
            key = (user.tenant, "static")
            counts[key] = (counts.get(key) or 0) + 1
    return [TenantView(name=name, source=source, users=n)
            for (name, source), n in sorted(counts.items())
            if actor.tenant is None or name == actor.tenant]


@scoped
def profiles(runtime: Runtime, actor: Actor) -> list[ProfileView]:
    actor.require("read")
    return [ProfileView(name=name, settings=dict(values))
            for name, values in sorted(runtime.settings.profiles.items())]


def plugins(runtime: Runtime, actor: Actor) -> list[PluginView]:
    actor.require("read")
    return [PluginView(name=info.name, version=info.version, hooks=list(info.hooks))
            for info in runtime.hooks.plugin_info()]


@scoped
def status(runtime: Runtime, actor: Actor) -> StatusView:
    """Every plugin's readiness probe, with the detail ``/readyz`` leaves out (no secret,
    URL or host name is in it by the probes' contract)."""
    actor.require("read")
    results = runtime.hooks.readiness(runtime)
    return StatusView(ready=all(r.ready for r in results), version=__version__,
                      backends=[BackendStatus(backend=r.backend, ready=r.ready,
                                              reason=r.reason, detail=r.detail)
                                for r in results])
