"""Own-schema mode on the request path: log in, find a user, load their SIP accounts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Row

from zengine.logincache import LoginKey
from zengine.models import Account, Credentials, Identity, Rejected
from zengine.values import xml_invalid_char
from zengine_sql.schema import ACCOUNTS, TENANTS, USERS, utcnow
from zengine_sql.settings import PLUGIN_NAME
from zengine_sql.state import SqlState

log = structlog.get_logger("zengine.sql")


def _user_query() -> sa.Select[Any]:
    return (sa.select(USERS.c.id, USERS.c.username, USERS.c.password_hash, USERS.c.enabled,
                      USERS.c.profile, USERS.c.display_name, USERS.c.overrides,
                      TENANTS.c.name.label("tenant"))
            .select_from(USERS.outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id)))


def find_user_row(conn: Connection, username: str,
                  tenant: str | None = None) -> Row[Any] | None:
    """The user ``username`` of ``tenant``; with ``tenant=None`` the only user of that name
    (the one without a tenant when the name exists in several)."""
    if xml_invalid_char(username) is not None:
        # No stored name holds one (the schema refuses them); PostgreSQL would raise on NUL.
        return None
    # One indexed lookup on the username index: the cost does not grow with users.
    query = _user_query().where(USERS.c.username == username)
    if tenant is not None:
        query = query.where(TENANTS.c.name == tenant)
    # MariaDB's collations ignore trailing spaces (PAD SPACE) and often case: the database
    # narrows, Python decides, so ``carol `` and ``Carol`` never log in as ``carol``.
    rows = [row for row in conn.execute(query.limit(8)).all() if row.username == username]
    if len(rows) > 1:
        rows = [row for row in rows if row.tenant is None]
    return rows[0] if len(rows) == 1 else None


def identity_from_row(row: Row[Any]) -> Identity:
    return Identity(username=row.username, backend=PLUGIN_NAME, profile=row.profile,
                    display_name=row.display_name, tenant=row.tenant,
                    overrides=dict(row.overrides or {}))


def authenticate(state: SqlState, credentials: Credentials) -> Identity | Rejected | None:
    password = credentials.password.get_secret_value()
    with state.connect() as conn:
        row = find_user_row(conn, credentials.username, state.tenant)
    if row is None or row.password_hash is None:
        # Unknown here: abstain at once. The core spends one dummy verification when no
        # backend decides, so a chain of backends never burns it twice.
        return None
    # The stored hash is part of the cache key: after a password change the entry never hits.
    key = LoginKey(PLUGIN_NAME, row.tenant, row.username, row.password_hash)
    if not state.logins.verify(key, password,
                               lambda: state.passwords.verify(row.password_hash, password)):
        return Rejected(PLUGIN_NAME)
    if not row.enabled:
        return Rejected(PLUGIN_NAME, "user disabled")
    if state.passwords.needs_rehash(row.password_hash):
        _rehash(state, row.id, row.password_hash, password)
    return identity_from_row(row)


def _rehash(state: SqlState, user_id: int, old_hash: str, password: str) -> None:
    """argon2 parameters changed since the hash was made: store a hash with today's."""
    new_hash = state.passwords.hash(password)
    with state.connect(begin=True) as conn:
        # Only replace the hash we verified, in case an operator changed it meanwhile.
        conn.execute(sa.update(USERS)
                     .where(USERS.c.id == user_id, USERS.c.password_hash == old_hash)
                     .values(password_hash=new_hash, updated_at=utcnow()))
    log.info("sql.password_rehashed", user_id=user_id)


def find_identity(state: SqlState, username: str) -> Identity | None:
    with state.connect() as conn:
        row = find_user_row(conn, username, state.tenant)
    if row is None or not row.enabled:
        return None
    return identity_from_row(row)


def load_accounts(state: SqlState, identity: Identity) -> list[Account]:
    """Accounts of ``identity.username``, whichever backend logged the user in."""
    query = (sa.select(ACCOUNTS, TENANTS.c.name.label("tenant"), USERS.c.enabled.label("uen"))
             .select_from(ACCOUNTS.join(USERS, ACCOUNTS.c.user_id == USERS.c.id)
                          .outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id))
             .where(USERS.c.username == identity.username, ACCOUNTS.c.enabled == sa.true())
             .order_by(ACCOUNTS.c.position, ACCOUNTS.c.id))
    if state.tenant is not None:
        # A tenant's runtime reads only its tenant's rows.
        query = query.where(TENANTS.c.name == state.tenant)
    with state.connect() as conn:
        rows = [row for row in conn.execute(query).all()]
    if len({row.user_id for row in rows}) > 1:
        # The name exists in several tenants and no tenant is given: only the untenanted one.
        rows = [row for row in rows if row.tenant is None]
    if not rows:
        return []
    if not rows[0].uen:
        return []
    # A login that names a tenant only gets that tenant's user.
    if identity.tenant is not None and rows[0].tenant not in (None, identity.tenant):
        return []
    box = state.require_box()
    return [Account(
        ident=row.ident, sip_username=row.sip_username,
        sip_password=box.decrypt(row.sip_password), domain=row.domain, name=row.name,
        auth_username=row.auth_username, caller_id=row.caller_id,
        outbound_proxy=row.outbound_proxy, transport=row.transport, profile=row.profile,
        source=PLUGIN_NAME, overrides=dict(row.overrides or {}),
    ) for row in rows]
