"""Operator actions on the own schema (the ``zengine users`` and ``zengine db`` commands); what
may be stored, and its checks, is :mod:`zengine_sql.specs`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from zengine.passwords import Passwords
from zengine_sql.crypto import SecretBox
from zengine_sql.engine import unavailable_on_error
from zengine_sql.schema import ACCOUNTS, TENANTS, USERS, utcnow
from zengine_sql.specs import (
    ACCOUNT_OPTIONAL,
    AccountSpec,
    AdminError,
    Exists,
    UnknownUser,
    UserSpec,
    check_overrides,
    check_profile,
    check_text,
    check_texts,
)
from zengine_sql.state import SqlState


def tenant_id(conn: Connection, name: str | None) -> int | None:
    if name is None:
        return None
    found = conn.execute(sa.select(TENANTS.c.id).where(TENANTS.c.name == name)).scalar()
    if found is not None:
        return int(found)
    return _new_id(conn.execute(sa.insert(TENANTS).values(name=name)))


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every supported dialect returns the key
        raise AdminError("the database did not return the new row's id")
    return int(key[0])


def user_id(conn: Connection, username: str, tenant: str | None = None) -> int:
    """The user's id. ``tenant`` names the tenant; ``None`` is the one user of that name
    (refused, naming the tenants, when the name exists in several).

    Every function below that takes ``tenant=`` defaults it to the state's own tenant, so a
    caller holding a tenant's runtime (the admin API) is scoped to that tenant by itself.
    """
    query = (sa.select(USERS.c.id, USERS.c.username, TENANTS.c.name.label("tenant"))
             .select_from(USERS.outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id))
             .where(USERS.c.username == username))
    if tenant is not None:
        query = query.where(TENANTS.c.name == tenant)
    # MariaDB's collation may match "alice " for "alice": the database narrows, Python decides.
    rows = [row for row in conn.execute(query.limit(8)).all() if row.username == username]
    if not rows:
        raise UnknownUser(f"no user {username!r}"
                          + (f" in tenant {tenant!r}" if tenant else ""))
    if len(rows) > 1:
        tenants = ", ".join(sorted(str(row.tenant or "-") for row in rows))
        raise AdminError(f"user {username!r} exists in several tenants ({tenants}); name one "
                         "with --tenant")
    return int(rows[0].id)


def insert_user(conn: Connection, box: SecretBox | None, spec: UserSpec,
                passwords: Passwords) -> int:
    """Insert one user and their accounts; hashing was done by the caller if it mattered."""
    if not spec.username or spec.username != spec.username.strip():
        # Nobody can type a login name that is empty or padded into a phone.
        raise AdminError(f"username {spec.username!r} is empty or starts/ends with spaces",
                         field="username")
    check_texts(spec)
    # Unique per tenant; the database cannot compare a NULL tenant, so this check does.
    exists = conn.execute(
        sa.select(USERS.c.id).select_from(USERS.outerjoin(TENANTS,
                                                          USERS.c.tenant_id == TENANTS.c.id))
        .where(USERS.c.username == spec.username,
               TENANTS.c.name == spec.tenant if spec.tenant is not None
               else USERS.c.tenant_id.is_(None))).first()
    if exists is not None:
        where = f" in tenant {spec.tenant!r}" if spec.tenant is not None else ""
        raise Exists(f"user {spec.username!r} already exists{where}", field="username")
    password_hash = spec.password_hash
    if spec.password is not None:
        password_hash = passwords.hash(spec.password)
    now = utcnow()
    new_id = _new_id(conn.execute(sa.insert(USERS).values(
        username=spec.username, tenant_id=tenant_id(conn, spec.tenant),
        password_hash=password_hash, display_name=spec.display_name, profile=spec.profile,
        enabled=spec.enabled, overrides=spec.overrides, created_at=now, updated_at=now,
    )))
    for position, account in enumerate(spec.accounts):
        insert_account(conn, box, new_id, account, position)
    return new_id


def insert_account(conn: Connection, box: SecretBox | None, owner: int, spec: AccountSpec,
                   position: int | None = None) -> None:
    if box is None:
        raise AdminError("SIP passwords need an encryption key: set [plugins.sql] "
                         "encryption_keys (make one with `zengine db generate-key`)")
    check_texts(spec)
    if spec.sip_password:
        sealed, key_id = box.encrypt(spec.sip_password), box.current
    elif spec.sealed is not None:
        sealed, key_id = spec.sealed
    else:
        raise AdminError(f"account {spec.ident!r}: empty SIP password",
                         field=f"{spec.where}sip_password")
    if position is None:
        position = int(conn.execute(sa.select(sa.func.count()).select_from(ACCOUNTS)
                                    .where(ACCOUNTS.c.user_id == owner)).scalar_one())
    clash = conn.execute(sa.select(ACCOUNTS.c.id).where(
        ACCOUNTS.c.user_id == owner, ACCOUNTS.c.ident == spec.ident)).first()
    if clash is not None:
        raise Exists(f"account ident {spec.ident!r} already exists for this user",
                     field=f"{spec.where}ident")
    conn.execute(sa.insert(ACCOUNTS).values(
        user_id=owner, ident=spec.ident, position=position, sip_username=spec.sip_username,
        sip_password=sealed, key_id=key_id, domain=spec.domain,
        overrides=spec.overrides, enabled=True, **spec.optional))


def add_user(state: SqlState, spec: UserSpec) -> None:
    if spec.tenant is None:
        spec.tenant = state.tenant
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        insert_user(conn, state.box, spec, state.passwords)


def add_account(state: SqlState, username: str, spec: AccountSpec, *,
                tenant: str | None = None) -> None:
    tenant = tenant if tenant is not None else state.tenant
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        insert_account(conn, state.box, user_id(conn, username, tenant), spec)


def list_users(state: SqlState, tenant: str | None = None, *,
               search: str = "") -> list[dict[str, Any]]:
    """Users (of ``tenant``), whose name contains ``search`` when given (case-insensitive)."""
    tenant = tenant if tenant is not None else state.tenant
    count = (sa.select(sa.func.count()).select_from(ACCOUNTS)
             .where(ACCOUNTS.c.user_id == USERS.c.id).scalar_subquery())
    query = (sa.select(USERS.c.username, USERS.c.enabled, USERS.c.profile,
                       USERS.c.display_name, TENANTS.c.name.label("tenant"),
                       count.label("accounts"),
                       (USERS.c.password_hash.is_not(None)).label("has_password"))
             .select_from(USERS.outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id))
             .order_by(USERS.c.username))
    if tenant is not None:
        query = query.where(TENANTS.c.name == tenant)
    if search:
        # LIKE metacharacters in what the operator typed are matched literally.
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        query = query.where(sa.func.lower(USERS.c.username).like(pattern, escape="\\"))
    with unavailable_on_error(state.url), state.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def list_tenants(state: SqlState) -> list[dict[str, Any]]:
    """Every tenant row and how many users it holds."""
    count = (sa.select(sa.func.count()).select_from(USERS)
             .where(USERS.c.tenant_id == TENANTS.c.id).scalar_subquery())
    query = sa.select(TENANTS.c.name, count.label("users")).order_by(TENANTS.c.name)
    with unavailable_on_error(state.url), state.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def show_user(state: SqlState, username: str, *, with_secrets: bool = False,
              tenant: str | None = None) -> dict[str, Any]:
    """Everything about one user; SIP passwords only when asked (export)."""
    tenant = tenant if tenant is not None else state.tenant
    with unavailable_on_error(state.url), state.engine.connect() as conn:
        owner = user_id(conn, username, tenant)
        row = conn.execute(
            sa.select(USERS, TENANTS.c.name.label("tenant"))
            .select_from(USERS.outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id))
            .where(USERS.c.id == owner)).first()
        if row is None:
            raise UnknownUser(f"no user {username!r}")
        accounts = conn.execute(sa.select(ACCOUNTS).where(ACCOUNTS.c.user_id == row.id)
                                .order_by(ACCOUNTS.c.position, ACCOUNTS.c.id)).all()
    return user_document(row._mapping, [a._mapping for a in accounts],
                         state.box if with_secrets else None)


def user_document(user: Mapping[Any, Any], accounts: list[Mapping[Any, Any]],
                  box: SecretBox | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "username": user["username"], "tenant": user["tenant"],
        "display_name": user["display_name"], "profile": user["profile"],
        "enabled": bool(user["enabled"]), "password_hash": user["password_hash"],
        "overrides": user["overrides"] or {}, "accounts": [],
    }
    for account in accounts:
        item: dict[str, Any] = {"ident": account["ident"],
                                "sip_username": account["sip_username"],
                                "domain": account["domain"]}
        for name in ACCOUNT_OPTIONAL:
            item[name] = account[name]
        item["enabled"] = bool(account["enabled"])
        item["overrides"] = account["overrides"] or {}
        item["key_id"] = account["key_id"]
        if box is not None:
            item["sip_password"] = box.decrypt(account["sip_password"]).get_secret_value()
        doc["accounts"].append(item)
    return doc


def forget_login(state: SqlState, username: str, tenant: str | None = None) -> None:
    """Drop the user's verified-login cache entry (shared with the servers when the cache
    lives in Redis; a server's in-process cache stops matching by itself, see docs/security.md)."""
    state.logins.forget(username, tenant=tenant)


def set_password(state: SqlState, username: str, password: str | None, *,
                 tenant: str | None = None) -> None:
    tenant = tenant if tenant is not None else state.tenant
    check_text("", "password", password)
    new_hash = state.passwords.hash(password) if password is not None else None
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        conn.execute(sa.update(USERS).where(USERS.c.id == user_id(conn, username, tenant))
                     .values(password_hash=new_hash, updated_at=utcnow()))
        forget_login(state, username, tenant)


#: User fields :func:`update_user` changes; ``enabled`` has :func:`set_enabled`.
USER_UPDATABLE = ("display_name", "profile", "overrides")


def update_user(state: SqlState, username: str, changes: Mapping[str, Any],
                profiles: Collection[str], *, tenant: str | None = None) -> None:
    """Change some of :data:`USER_UPDATABLE`, with the checks ``users add`` applies."""
    tenant = tenant if tenant is not None else state.tenant
    unknown = set(changes) - set(USER_UPDATABLE)
    if unknown:
        raise AdminError(f"cannot change {', '.join(sorted(unknown))}",
                         field=sorted(unknown)[0])
    for name in ("display_name", "profile"):
        if name in changes:
            check_text("", name, changes[name])
    if changes.get("profile") is not None:
        check_profile(changes["profile"], profiles, "", "profile")
    if changes.get("overrides") is not None:
        check_overrides(changes["overrides"], "overrides", account=False)
    values = dict(changes)
    if "overrides" in values and values["overrides"] is None:
        values["overrides"] = {}
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        conn.execute(sa.update(USERS).where(USERS.c.id == user_id(conn, username, tenant))
                     .values(**values, updated_at=utcnow()))
        forget_login(state, username, tenant)


def set_sip_password(state: SqlState, username: str, ident: str, password: str, *,
                     tenant: str | None = None) -> None:
    tenant = tenant if tenant is not None else state.tenant
    box = state.box
    if box is None:
        raise AdminError("no encryption key configured")
    check_text("", "sip_password", password)
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        done = conn.execute(sa.update(ACCOUNTS).where(
            ACCOUNTS.c.user_id == user_id(conn, username, tenant), ACCOUNTS.c.ident == ident,
        ).values(sip_password=box.encrypt(password), key_id=box.current)).rowcount
    if not done:
        raise AdminError(f"user {username!r} has no account {ident!r}")


def set_enabled(state: SqlState, username: str, enabled: bool, *,
                tenant: str | None = None) -> None:
    tenant = tenant if tenant is not None else state.tenant
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        conn.execute(sa.update(USERS).where(USERS.c.id == user_id(conn, username, tenant))
                     .values(enabled=enabled, updated_at=utcnow()))
        forget_login(state, username, tenant)


def delete_user(state: SqlState, username: str, *,
                tenant: str | None = None) -> None:
    tenant = tenant if tenant is not None else state.tenant
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        owner = user_id(conn, username, tenant)
        forget_login(state, username, tenant)
        # Explicit, so the result does not depend on the database enforcing ON DELETE CASCADE.
        conn.execute(sa.delete(ACCOUNTS).where(ACCOUNTS.c.user_id == owner))
        conn.execute(sa.delete(USERS).where(USERS.c.id == owner))


def delete_account(state: SqlState, username: str, ident: str, *,
                   tenant: str | None = None) -> None:
    tenant = tenant if tenant is not None else state.tenant
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        done = conn.execute(sa.delete(ACCOUNTS).where(
            ACCOUNTS.c.user_id == user_id(conn, username, tenant),
            ACCOUNTS.c.ident == ident)).rowcount
    if not done:
        raise AdminError(f"user {username!r} has no account {ident!r}")


def rotate_key(state: SqlState, batch: int = 500) -> int:
    """Re-encrypt every SIP password not under the current key; returns how many."""
    box = state.box
    if box is None:
        raise AdminError("no encryption key configured")
    done = 0
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        while True:
            rows = conn.execute(sa.select(ACCOUNTS.c.id, ACCOUNTS.c.sip_password)
                                .where(ACCOUNTS.c.key_id != box.current)
                                .order_by(ACCOUNTS.c.id).limit(batch)).all()
            if not rows:
                return done
            for row in rows:
                sealed = box.encrypt(box.decrypt(row.sip_password).get_secret_value())
                conn.execute(sa.update(ACCOUNTS).where(ACCOUNTS.c.id == row.id)
                             .values(sip_password=sealed, key_id=box.current))
            done += len(rows)
