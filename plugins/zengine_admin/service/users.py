"""Users and their SIP accounts: list, read, and (SQL own schema only) write through the
CLI's validation and write code (``zengine_sql.admin``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from zengine_admin.models import (
    AccountCreate,
    AccountView,
    UserCreate,
    UserDetail,
    UserPage,
    UserSummary,
    UserUpdate,
)
from zengine_admin.problems import Invalid, NotFound, ReadOnly
from zengine_admin.service.base import (
    Actor,
    admin_error,
    audit,
    backend_errors,
    find_identity,
    scoped,
    sql_call,
    sql_own,
    static_users,
    tenant_of,
    writable,
)

if TYPE_CHECKING:
    from zengine.runtime import Runtime
    from zengine_sql.state import SqlState


def _summary_from_sql(runtime: Runtime, row: dict[str, Any]) -> UserSummary:
    return UserSummary(username=row["username"], backend="sql",
                       tenant=tenant_of(runtime, row["tenant"]),
                       display_name=row["display_name"], profile=row["profile"],
                       enabled=bool(row["enabled"]), writable=True, accounts=row["accounts"])


def _static_summary(runtime: Runtime, username: str, user: Any) -> UserSummary:
    return UserSummary(username=username, backend="static",
                       tenant=tenant_of(runtime, user.tenant),
                       display_name=user.display_name, profile=user.profile,
                       enabled=user.enabled, writable=False, accounts=len(user.accounts))


def _listable(runtime: Runtime, actor: Actor, query: str) -> Iterator[UserSummary]:
    """Users of the backends that can list theirs, in chain order, filtered."""
    from zengine_sql import admin

    needle = query.casefold()
    for backend in runtime.settings.auth.chain:
        if backend == "sql":
            state = sql_own(runtime)
            if state is None:
                continue
            rows = sql_call(partial(admin.list_users, state, actor.tenant, search=query))
            yield from (_summary_from_sql(runtime, r) for r in rows)
        elif backend == "static":
            for username, user in sorted(static_users(runtime).items()):
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


def _lookup(runtime: Runtime, actor: Actor, username: str) -> UserSummary | None:
    identity = find_identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        return None
    return UserSummary(username=identity.username, backend=identity.backend,
                       tenant=tenant_of(runtime, identity.tenant),
                       display_name=identity.display_name,
                       profile=identity.profile, enabled=True,
                       writable=identity.backend == "sql" and sql_own(runtime) is not None)


@scoped
def user_detail(runtime: Runtime, actor: Actor, username: str) -> UserDetail:
    """One user and their SIP accounts (never a password). A user the actor's tenant does
    not hold is "not found", exactly like a user nobody holds."""
    actor.require("read")
    from zengine_sql import admin, specs

    state = sql_own(runtime)
    if state is not None and "sql" in runtime.settings.auth.chain:
        try:
            doc = backend_errors(lambda: admin.show_user(state, username, tenant=actor.tenant))
        except specs.AdminError:
            doc = None
        if doc is not None and actor.sees(doc["tenant"]):
            accounts = [AccountView(**{k: a[k] for k in AccountView.model_fields})
                        for a in doc["accounts"]]
            return UserDetail(username=doc["username"], backend="sql",
                              tenant=tenant_of(runtime, doc["tenant"]),
                              display_name=doc["display_name"], profile=doc["profile"],
                              enabled=doc["enabled"], writable=True, accounts=len(accounts),
                              account_list=accounts,
                              has_password=doc["password_hash"] is not None,
                              overrides=doc["overrides"])
    static = static_users(runtime).get(username)
    identity = find_identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        raise NotFound(f"no user {username!r}")
    loaded = backend_errors(lambda: runtime.hooks.load_accounts(identity, runtime))
    accounts = [AccountView(ident=a.ident, sip_username=a.sip_username, domain=a.domain,
                            name=a.name, auth_username=a.auth_username,
                            caller_id=a.caller_id, outbound_proxy=a.outbound_proxy,
                            transport=a.transport, profile=a.profile) for a in loaded]
    return UserDetail(username=identity.username, backend=identity.backend,
                      tenant=tenant_of(runtime, identity.tenant),
                      display_name=identity.display_name,
                      profile=identity.profile,
                      enabled=static.enabled if static is not None else True,
                      writable=False, accounts=len(accounts), account_list=accounts,
                      has_password=True if static is not None else None,
                      overrides=dict(identity.overrides))


def _owned(runtime: Runtime, actor: Actor, state: SqlState, username: str) -> None:
    """The user exists in the own schema and in the actor's tenant (else 404, either way)."""
    from zengine_sql import admin, specs

    try:
        doc = backend_errors(lambda: admin.show_user(state, username, tenant=actor.tenant))
    except specs.AdminError:
        identity = find_identity(runtime, username)
        if identity is not None and actor.sees(identity.tenant):
            raise ReadOnly(f"user {username!r} lives in the {identity.backend!r} backend, "
                           "which the API can read but not change") from None
        raise NotFound(f"no user {username!r}") from None
    if not actor.sees(doc["tenant"]):
        raise NotFound(f"no user {username!r}")


def _account_spec(body: AccountCreate, where: str) -> Any:
    from zengine_sql import specs

    optional = {name: getattr(body, name) for name in specs.ACCOUNT_OPTIONAL}
    return specs.AccountSpec(ident=body.ident, sip_username=body.sip_username,
                             sip_password=body.sip_password, domain=body.domain,
                             optional=optional, overrides=dict(body.overrides), where=where)


@scoped
def create_user(runtime: Runtime, actor: Actor, body: UserCreate) -> UserDetail:
    """A new user of the own schema, with accounts, through the CLI's write path."""
    actor.require("write")
    from zengine_sql import admin, specs

    state = writable(runtime)
    tenant = body.tenant if body.tenant is not None else actor.tenant
    if not actor.sees(tenant):
        raise Invalid("tenant", f"this API key may only create users of tenant "
                                f"{actor.tenant!r}")
    spec = specs.UserSpec(username=body.username, password=body.password,
                          display_name=body.display_name, profile=body.profile, tenant=tenant,
                          enabled=body.enabled, overrides=dict(body.overrides),
                          accounts=[_account_spec(a, f"accounts/{i}/")
                                    for i, a in enumerate(body.accounts)])

    def create() -> None:
        specs.check_overrides(spec.overrides, "overrides", account=False)
        for account in spec.accounts:
            specs.check_overrides(account.overrides, f"{account.where}overrides",
                                  account=True)
        specs.check_user(spec, runtime.settings.profiles)
        admin.add_user(state, spec)

    sql_call(create)
    audit(runtime, actor, "user.created", username=body.username,
          detail=f"accounts={len(body.accounts)}")
    return user_detail(runtime, actor, body.username)


@scoped
def update_user(runtime: Runtime, actor: Actor, username: str, body: UserUpdate) -> UserDetail:
    """Change the fields ``body`` sets (display name, profile, enabled, overrides)."""
    actor.require("write")
    from zengine_sql import admin, specs

    state = writable(runtime)
    _owned(runtime, actor, state, username)
    changes = body.model_dump(exclude_unset=True)

    def update() -> None:
        if "overrides" in changes and changes["overrides"] is not None:
            specs.check_overrides(changes["overrides"], "overrides", account=False)
        enabled = changes.pop("enabled", None)
        if changes:
            admin.update_user(state, username, changes, runtime.settings.profiles,
                              tenant=actor.tenant)
        if enabled is not None:
            admin.set_enabled(state, username, enabled, tenant=actor.tenant)

    sql_call(update)
    audit(runtime, actor, "user.updated", username=username,
          detail="fields=" + ",".join(sorted(body.model_dump(exclude_unset=True))))
    return user_detail(runtime, actor, username)


@scoped
def set_password(runtime: Runtime, actor: Actor, username: str, password: str | None) -> None:
    actor.require("write")
    from zengine_sql import admin

    state = writable(runtime)
    _owned(runtime, actor, state, username)
    sql_call(lambda: admin.set_password(state, username, password,
                                              tenant=actor.tenant))
    audit(runtime, actor, "user.password_set", username=username,
          detail="removed" if password is None else "")


@scoped
def delete_user(runtime: Runtime, actor: Actor, username: str) -> None:
    actor.require("write")
    from zengine_sql import admin

    state = writable(runtime)
    _owned(runtime, actor, state, username)
    sql_call(lambda: admin.delete_user(state, username, tenant=actor.tenant))
    audit(runtime, actor, "user.deleted", username=username)


@scoped
def add_account(runtime: Runtime, actor: Actor, username: str,
                body: AccountCreate) -> UserDetail:
    actor.require("write")
    from zengine_sql import admin, specs

    state = writable(runtime)
    _owned(runtime, actor, state, username)
    spec = _account_spec(body, "")

    def add() -> None:
        specs.check_overrides(spec.overrides, "overrides", account=True)
        specs.check_account(spec, runtime.settings.profiles)
        admin.add_account(state, username, spec, tenant=actor.tenant)

    sql_call(add)
    audit(runtime, actor, "account.created", username=username, detail=f"ident={body.ident}")
    return user_detail(runtime, actor, username)


@scoped
def set_sip_password(runtime: Runtime, actor: Actor, username: str, ident: str,
                     password: str) -> None:
    actor.require("write")
    from zengine_sql import admin, specs

    state = writable(runtime)
    _owned(runtime, actor, state, username)
    try:
        backend_errors(lambda: admin.set_sip_password(
            state, username, ident, password, tenant=actor.tenant))
    except specs.AdminError as exc:
        raise (NotFound(str(exc)) if "has no account" in str(exc)
               else admin_error(exc)) from None
    audit(runtime, actor, "account.sip_password_set", username=username, detail=f"ident={ident}")


@scoped
def delete_account(runtime: Runtime, actor: Actor, username: str, ident: str) -> None:
    actor.require("write")
    from zengine_sql import admin, specs

    state = writable(runtime)
    _owned(runtime, actor, state, username)
    try:
        backend_errors(lambda: admin.delete_account(state, username, ident,
                                                             tenant=actor.tenant))
    except specs.AdminError as exc:
        raise NotFound(str(exc)) from None
    audit(runtime, actor, "account.deleted", username=username, detail=f"ident={ident}")
