"""Mapping mode: log in against, and read accounts from, tables a PBX already has.

Tables are SQLAlchemy ``table()``/``column()`` constructs built from configured *names*; the
dialect quotes them. Nothing from the config is ever pasted into SQL text.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import SecretStr
from sqlalchemy.engine import Row
from sqlalchemy.sql.expression import TableClause

from zengine.errors import AccountDataError
from zengine.models import Abstain, Account, Credentials, Identity, Rejected
from zengine.passwords import Passwords
from zengine.values import xml_invalid_char
from zengine_sql.settings import PLUGIN_NAME, MappingSettings
from zengine_sql.state import SqlState

log = structlog.get_logger("zengine.sql")

_AUTH_ROLES = ("key", "login", "domain", "password", "ha1", "realm", "auth_type")
_ACCOUNT_ROLES = ("join", "ident", "caller_id", "outbound_proxy", "domain")


def ha1(username: str, realm: str, password: str) -> str:
    """SIP digest HA1 = md5(username:realm:password), as Kamailio and Asterisk store it."""
    # MD5 is what the SIP digest scheme (RFC 2617/8760) and these PBX schemas define.
    data = f"{username}:{realm}:{password}".encode()
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _auth_columns(m: MappingSettings) -> dict[str, str]:
    names = {"key": m.key_column or m.login_column, "login": m.login_column,
             "domain": m.domain_column, "password": m.password_column, "ha1": m.ha1_column,
             "realm": m.realm_column, "auth_type": m.auth_type_column,
             "tenant": m.tenant_column}
    return {role: name for role, name in names.items() if name is not None}


def _account_columns(m: MappingSettings) -> dict[str, str]:
    names = {"join": m.accounts_join_column, "ident": m.accounts_ident_column,
             "caller_id": m.accounts_caller_id_column,
             "outbound_proxy": m.accounts_outbound_proxy_column,
             "domain": m.accounts_domain_column}
    return {role: name for role, name in names.items() if name is not None}


def required_columns(m: MappingSettings) -> dict[str, list[str]]:
    """Table name -> the columns the mapping reads, for ``zengine db check``."""
    tables = {m.table: list(dict.fromkeys(_auth_columns(m).values()))}
    if m.accounts_table is not None:
        tables[m.accounts_table] = list(dict.fromkeys(_account_columns(m).values()))
    return tables


def auth_table(m: MappingSettings) -> TableClause:
    cols = _auth_columns(m)
    return sa.table(m.table, *(sa.column(name) for name in dict.fromkeys(cols.values())),
                    schema=m.db_schema)


def accounts_table(m: MappingSettings) -> TableClause | None:
    if m.accounts_table is None:
        return None
    cols = _account_columns(m)
    return sa.table(m.accounts_table, *(sa.column(name) for name in dict.fromkeys(cols.values())),
                    schema=m.db_schema)


def _labelled(table: TableClause, cols: dict[str, str], prefix: str) -> list[Any]:
    return [table.c[name].label(f"{prefix}{role}") for role, name in cols.items()]


def _split_login(m: MappingSettings, login: str) -> tuple[str, str | None]:
    """``user@domain`` names the domain when the table has one; a configured domain wins."""
    if m.domain is not None:
        user, sep, domain = login.rpartition("@")
        return (user, m.domain) if sep and domain == m.domain else (login, m.domain)
    if m.domain_column is not None and "@" in login:
        user, _, domain = login.rpartition("@")
        return user, domain
    return login, None


def _where(m: MappingSettings, table: TableClause, login: str,
           tenant: str | None = None) -> list[Any]:
    user, domain = _split_login(m, login)
    clauses: list[Any] = [table.c[m.login_column] == user]
    if domain is not None and m.domain_column is not None:
        clauses.append(table.c[m.domain_column] == domain)
    value = m.tenant if m.tenant is not None else tenant
    if m.tenant_column is not None and value is not None:
        # A tenant's runtime sees its own rows only; the global one (no tenant) sees all.
        clauses.append(table.c[m.tenant_column] == value)
    return clauses


def _auth_rows(state: SqlState, m: MappingSettings, login: str) -> list[Row[Any]]:
    if xml_invalid_char(login) is not None:
        # Nothing to find, and PostgreSQL would raise on a NUL: never sent to the database.
        return []
    table = auth_table(m)
    query = (sa.select(*_labelled(table, _auth_columns(m), "a_"))
             .where(*_where(m, table, login, state.tenant)).limit(2))
    with state.connect() as conn:
        rows = conn.execute(query).all()
    # Byte-exact, whatever the collation (MariaDB pads spaces and folds case).
    user, domain = _split_login(m, login)
    return [row for row in rows if _text(row._mapping["a_login"]) == user
            and (domain is None or m.domain_column is None
                 or _text(row._mapping.get("a_domain")) == domain)]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _realm(m: MappingSettings, row: Row[Any]) -> str:
    mapping = row._mapping
    if m.realm_column is not None and _text(mapping.get("a_realm")):
        return _text(mapping["a_realm"])
    if m.realm_from_domain and _text(mapping.get("a_domain")):
        return _text(mapping["a_domain"])
    return m.default_realm or m.domain or ""


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def check_password(m: MappingSettings, row: Row[Any], password: str,
                   passwords: Passwords) -> tuple[bool, bool]:
    """``(matches, stored_in_plain)``; every comparison is constant-time."""
    mapping = row._mapping
    stored = _text(mapping.get("a_password"))
    stored_ha1 = _text(mapping.get("a_ha1")).lower()
    auth_type = _text(mapping.get("a_auth_type")).lower()
    use_ha1 = auth_type == "md5" or (not stored and bool(stored_ha1))
    if use_ha1:
        if not stored_ha1:
            return False, False
        return _same(ha1(_text(mapping["a_login"]), _realm(m, row), password), stored_ha1), False
    if not stored:
        return False, False
    if _hashed(m, stored):
        return passwords.verify(stored, password), False
    return _same(stored, password), True


def _hashed(m: MappingSettings, stored: str) -> bool:
    return m.stored_as == "argon2" or (m.stored_as == "auto" and stored.startswith("$argon2"))


def authenticate(state: SqlState,
                 credentials: Credentials) -> Identity | Rejected | Abstain | None:
    m = state.mapping
    assert m is not None  # noqa: S101 - the plugin only calls this in mapping mode
    password = credentials.password.get_secret_value()
    rows = _auth_rows(state, m, credentials.username)
    # Unknown logins abstain at once: the core spends one dummy argon2 verification when no
    # backend decides, and pads every failed login to [auth] failure_floor_ms. Plain or HA1
    # passwords cost nothing to compare: the lookup was the whole cost, so say it is spent.
    if not rows:
        return Abstain(PLUGIN_NAME) if m.stored_as == "plain" else None
    if len(rows) > 1:
        return Rejected(PLUGIN_NAME, "login matches several rows; log in as user@domain")
    ok, plain = check_password(m, rows[0], password, state.passwords)
    if not ok:
        if m.stored_as != "plain" and not _hashed(m, _text(rows[0]._mapping.get("a_password"))):
            # Here an unknown user costs one dummy argon2 verification (the table may hold
            # hashes), a plain or HA1 comparison nothing: spend it too, or the timing tells
            # the two apart. (With stored_as = "plain" neither spends it: see Abstain above.)
            state.passwords.verify(None, password)
        return Rejected(PLUGIN_NAME)
    if not plain:
        # The row cannot give the SIP password back (HA1, hash): it is the one just verified.
        state.verified.set((credentials.username, SecretStr(password)))
    return _identity(m, credentials.username, rows[0])


def _identity(m: MappingSettings, login: str, row: Row[Any]) -> Identity:
    domain = _text(row._mapping.get("a_domain")) or m.domain
    attributes = {"sql_domain": domain} if domain else {}
    return Identity(username=login, backend=PLUGIN_NAME, profile=m.profile,
                    attributes=attributes)


def find_identity(state: SqlState, username: str) -> Identity | None:
    m = state.mapping
    assert m is not None  # noqa: S101
    rows = _auth_rows(state, m, username)
    return _identity(m, username, rows[0]) if len(rows) == 1 else None


def _sip_password(state: SqlState, m: MappingSettings, login: str,
                  row: Row[Any]) -> SecretStr | None:
    mapping = row._mapping
    stored = _text(mapping.get("a_password"))
    is_md5 = _text(mapping.get("a_auth_type")).lower() == "md5"
    if stored and not is_md5 and not _hashed(m, stored):
        return SecretStr(stored)
    verified = state.verified.get()
    if verified is not None and verified[0] == login:
        return verified[1]
    return None


def load_accounts(state: SqlState, identity: Identity) -> list[Account]:
    m = state.mapping
    assert m is not None  # noqa: S101
    table = auth_table(m)
    columns = _labelled(table, _auth_columns(m), "a_")
    accounts = accounts_table(m)
    query = sa.select(*columns).where(*_where(m, table, identity.username, state.tenant))
    if accounts is not None:
        key = table.c[m.key_column or m.login_column]
        query = (sa.select(*columns, *_labelled(accounts, _account_columns(m), "e_"))
                 .select_from(table.join(accounts, accounts.c[m.accounts_join_column or ""] == key))
                 .where(*_where(m, table, identity.username, state.tenant)))
        if m.accounts_ident_column is not None:
            query = query.order_by(accounts.c[m.accounts_ident_column])
    with state.connect() as conn:
        rows = list(conn.execute(query.limit(101)).all())
    if accounts is None and len(rows) > 1:
        return []
    result = []
    for row in rows:
        mapping = row._mapping
        login = _text(mapping["a_login"])
        password = _sip_password(state, m, identity.username, row)
        if password is None:
            # HA1-only row and no login in this request (e.g. `zengine render`).
            log.warning("sql.mapping_no_sip_password", username=identity.username)
            continue
        domain = (_text(mapping.get("e_domain")) or _text(mapping.get("a_domain"))
                  or m.domain or "")
        if not domain:
            raise AccountDataError(f"mapped account of {identity.username!r} has no domain; "
                                   "set [plugins.sql.mapping] domain")
        ident = _text(mapping.get("e_ident")) or f"{login}@{domain}"
        result.append(Account(
            ident=ident, sip_username=login, sip_password=password, domain=domain,
            name=_text(mapping.get("e_ident")) or None,
            caller_id=_text(mapping.get("e_caller_id")) or None,
            outbound_proxy=_text(mapping.get("e_outbound_proxy")) or None,
            profile=m.profile, source=PLUGIN_NAME))
    return result
