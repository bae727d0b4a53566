"""``zengine users import`` / ``export``: CSV and JSON, all-or-nothing, errors name row, column."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from zengine.passwords import Passwords
from zengine_sql.admin import insert_user, user_document
from zengine_sql.engine import unavailable_on_error
from zengine_sql.schema import ACCOUNTS, TENANTS, USERS
from zengine_sql.specs import (
    ACCOUNT_OPTIONAL,
    AccountSpec,
    AdminError,
    UserSpec,
    check_overrides,
    check_user,
)
from zengine_sql.state import SqlState

USER_KEYS = ("username", "password", "password_hash", "display_name", "profile", "tenant",
             "enabled", "overrides")
ACCOUNT_KEYS = ("ident", "sip_username", "sip_password", "domain", *ACCOUNT_OPTIONAL,
                "overrides")
#: CSV has one row per account; account columns that clash with user columns get a prefix.
CSV_COLUMNS = (*USER_KEYS, "ident", "sip_username", "sip_password", "domain",
               *(f"account_{name}" if name == "profile" else name for name in ACCOUNT_OPTIONAL),
               "account_overrides")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class ImportFailed(AdminError):
    pass


def _err(where: str, column: str, message: str) -> ImportFailed:
    return ImportFailed(f"{where}, column {column!r}: {message}")


def _bool(value: Any, where: str, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _err(where, column, f"{value!r} is not a boolean (true/false)")


def _json_object(value: Any, where: str, column: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _err(where, column, f"not JSON ({exc.msg})") from None
        if isinstance(parsed, dict):
            return parsed
    raise _err(where, column, "must be a JSON object")


def _str(value: Any, where: str, column: str, *, required: bool = False,
         limit: int = 255) -> str | None:
    if value is None or (isinstance(value, str) and value == ""):
        if required:
            raise _err(where, column, "is required")
        return None
    if not isinstance(value, str | int):
        raise _err(where, column, "must be a string")
    text = str(value)
    if len(text) > limit:
        raise _err(where, column, f"longer than {limit} characters")
    return text


def _user(data: Mapping[str, Any], where: str) -> UserSpec:
    spec = UserSpec(username=_str(data.get("username"), where, "username", required=True) or "",
                    where=f"{where}, ")
    spec.password = _str(data.get("password"), where, "password", limit=1024)
    spec.password_hash = _str(data.get("password_hash"), where, "password_hash")
    if spec.password is not None and spec.password_hash is not None:
        raise _err(where, "password_hash", "give password or password_hash, not both")
    if spec.password_hash is not None and not spec.password_hash.startswith("$argon2"):
        raise _err(where, "password_hash", "is not an argon2 hash (zengine hash-password)")
    spec.display_name = _str(data.get("display_name"), where, "display_name")
    spec.profile = _str(data.get("profile"), where, "profile", limit=64)
    spec.tenant = _str(data.get("tenant"), where, "tenant", limit=64)
    enabled = data.get("enabled")
    spec.enabled = True if enabled in (None, "") else _bool(enabled, where, "enabled")
    spec.overrides = _json_object(data.get("overrides"), where, "overrides")
    try:
        check_overrides(spec.overrides, f"{where}, column 'overrides'", account=False)
    except AdminError as exc:
        raise ImportFailed(str(exc)) from None
    return spec


def _account(data: Mapping[str, Any], where: str, names: Mapping[str, str]) -> AccountSpec:
    """``names`` maps an account key to the column it came from (CSV prefixes some)."""
    def col(key: str) -> str:
        return names.get(key, key)

    spec = AccountSpec(
        ident=_str(data.get(col("ident")), where, col("ident"), required=True, limit=128) or "",
        sip_username=_str(data.get(col("sip_username")), where, col("sip_username"),
                          required=True) or "",
        # May be left out (an export without --with-sip-passwords): import_users keeps the
        # stored one of an account it replaces, and refuses a new account without one.
        sip_password=_str(data.get(col("sip_password")), where, col("sip_password"),
                          limit=1024) or "",
        domain=_str(data.get(col("domain")), where, col("domain"), required=True) or "",
        where=f"{where}, ", columns={key: col(key) for key in ACCOUNT_OPTIONAL},
    )
    for name in ACCOUNT_OPTIONAL:
        spec.optional[name] = _str(data.get(col(name)), where, col(name))
    spec.overrides = _json_object(data.get(col("overrides")), where, col("overrides"))
    try:
        check_overrides(spec.overrides, f"{where}, column {col('overrides')!r}", account=True)
    except AdminError as exc:
        raise ImportFailed(str(exc)) from None
    return spec


def parse_csv(text: str, source: str) -> list[UserSpec]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _parse_csv(reader, source)
    except csv.Error as exc:
        raise ImportFailed(f"{source} line {reader.line_num}: not valid CSV ({exc})") from None


def _parse_csv(reader: csv.DictReader[str], source: str) -> list[UserSpec]:
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise ImportFailed(f"{source}: unknown column(s) {unknown}; allowed: "
                           f"{', '.join(CSV_COLUMNS)}")
    if "username" not in header:
        raise ImportFailed(f"{source}: missing column 'username'")
    names = {"profile": "account_profile", "overrides": "account_overrides"}
    # One user per (tenant, username): the same login may be in two tenants.
    users: dict[tuple[str | None, str], UserSpec] = {}
    last: dict[str, UserSpec] = {}
    for row in reader:
        where = f"{source} row {reader.line_num}"
        if None in row:
            raise ImportFailed(f"{where}: more fields than columns in the header")
        # Cells our export neutralised against formula injection come back as they were.
        row = {key: restore_cell(value) if isinstance(value, str) else value
               for key, value in row.items()}
        user = _user(row, where)
        # A continuation row leaves the tenant empty: it belongs to the user of that name
        # given last.
        known = (users.get((user.tenant, user.username)) if user.tenant is not None
                 else last.get(user.username))
        if known is None:
            users[(user.tenant, user.username)] = known = user
        elif row.get("password") or row.get("password_hash"):
            raise _err(where, "password", f"user {user.username!r} already given a password "
                                          "on an earlier row")
        last[user.username] = known
        if any(row.get(key) for key in ("ident", "sip_username", "sip_password", "domain")):
            known.accounts.append(_account(row, where, names))
    return list(users.values())


def parse_json(text: str, source: str) -> list[UserSpec]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{source}: not JSON: {exc.msg} at line {exc.lineno}") from None
    if isinstance(data, dict) and isinstance(data.get("users"), list):
        data = data["users"]
    if not isinstance(data, list):
        raise ImportFailed(f'{source}: expected a list of users (or {{"users": [...]}})')
    result: list[UserSpec] = []
    seen: set[tuple[str | None, str]] = set()
    for number, item in enumerate(data, start=1):
        where = f"{source} row {number}"
        if not isinstance(item, dict):
            raise ImportFailed(f"{where}: must be an object")
        unknown = sorted(set(item) - {*USER_KEYS, "accounts"})
        if unknown:
            raise _err(where, unknown[0], "unknown key")
        user = _user(item, where)
        if (user.tenant, user.username) in seen:
            raise _err(where, "username", f"{user.username!r} appears twice")
        seen.add((user.tenant, user.username))
        accounts = item.get("accounts") or []
        if not isinstance(accounts, list):
            raise _err(where, "accounts", "must be a list")
        for index, account in enumerate(accounts, start=1):
            awhere = f"{where} account {index}"
            if not isinstance(account, dict):
                raise ImportFailed(f"{awhere}: must be an object")
            extra = sorted(set(account) - {*ACCOUNT_KEYS, "enabled", "key_id"})
            if extra:
                raise _err(awhere, extra[0], "unknown key")
            user.accounts.append(_account(account, awhere, {}))
        result.append(user)
    return result


def read_file(path: Path, fmt: str | None) -> list[UserSpec]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImportFailed(f"{path}: not UTF-8 text") from None
    kind = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    return parse_json(text, path.name) if kind == "json" else parse_csv(text, path.name)


def check_sip_passwords(specs: list[UserSpec], *, replace: bool) -> None:
    """Without ``replace`` every account needs its SIP password: no stored one can be kept."""
    if replace:
        return
    for spec in specs:
        for account in spec.accounts:
            if not account.sip_password:
                raise _missing_sip_password(account)


def _missing_sip_password(account: AccountSpec) -> ImportFailed:
    column = account.columns.get("sip_password", "sip_password")
    return ImportFailed(f"{account.where}column {column!r}: is required for a new account (an "
                        "export without --with-sip-passwords leaves it out; `users import "
                        "--replace` keeps the stored SIP password of an account that exists)")


def hash_plain_passwords(specs: list[UserSpec], passwords: Passwords, *,
                         workers: int | None = None,
                         progress: Callable[[int, int], None] = lambda _d, _t: None) -> int:
    """Turn every plain ``password`` into ``password_hash``, on a pool of processes, before
    any transaction opens; returns how many were hashed."""
    from zengine_sql.hashing import hash_all

    pending = [spec for spec in specs if spec.password is not None]
    if not pending:
        return 0
    hashes = hash_all([spec.password or "" for spec in pending], passwords.settings,
                      workers=workers, progress=progress)
    for spec, digest in zip(pending, hashes, strict=True):
        spec.password, spec.password_hash = None, digest
    return len(pending)


def import_users(state: SqlState, specs: list[UserSpec], *, replace: bool = False,
                 progress: Callable[[int], None] = lambda _n: None,
                 profiles: Collection[str] | None = None,
                 hash_progress: Callable[[int, int], None] = lambda _d, _t: None,
                 hash_workers: int | None = None) -> int:
    """Insert every user, or none: one transaction, rolled back on the first error.

    Everything that can be checked without the database is checked first (with ``profiles``,
    the config's, the profiles too); plain passwords are then hashed on every core
    (``hash_progress``), and only then does the transaction open, to write (``progress``).
    With ``replace`` an account given without a SIP password keeps the stored one of the
    account with the same ident.
    """
    if profiles is not None:
        for spec in specs:
            try:
                check_user(spec, profiles)
            except AdminError as exc:
                raise ImportFailed(str(exc)) from None
    check_sip_passwords(specs, replace=replace)
    _check_idents(specs)
    hash_plain_passwords(specs, state.passwords, workers=hash_workers, progress=hash_progress)
    with unavailable_on_error(state.url), state.engine.begin() as conn:
        for spec in specs:
            if replace:
                _replace(conn, spec)
            try:
                insert_user(conn, state.box, spec, state.passwords)
            except AdminError as exc:
                raise ImportFailed(_where(spec, exc)) from None
            progress(1)
    return len(specs)


def _where(spec: UserSpec, exc: AdminError) -> str:
    """The error with the row it came from (its own, when it names one already)."""
    text = str(exc)
    source = spec.where.split(" row ", 1)[0]
    if spec.where and text.startswith(source):
        return text
    return f"{spec.where}user {spec.username!r}: {text}"


def _check_idents(specs: list[UserSpec]) -> None:
    for spec in specs:
        seen: set[str] = set()
        for account in spec.accounts:
            if account.ident in seen:
                column = account.columns.get("ident", "ident")
                raise ImportFailed(f"{account.where}column {column!r}: {account.ident!r} is "
                                   f"already an account of user {spec.username!r} on an "
                                   "earlier row")
            seen.add(account.ident)


def _replace(conn: sa.Connection, spec: UserSpec) -> None:
    """Delete the user ``spec`` replaces, keeping the stored SIP passwords it has no new one
    for."""
    # The same name in another tenant is another user: never replaced here.
    old = conn.execute(
        sa.select(USERS.c.id)
        .select_from(USERS.outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id))
        .where(USERS.c.username == spec.username,
               TENANTS.c.name == spec.tenant if spec.tenant is not None
               else USERS.c.tenant_id.is_(None))).scalar()
    stored: dict[str, tuple[Any, str]] = {}
    if old is not None:
        for row in conn.execute(sa.select(ACCOUNTS.c.ident, ACCOUNTS.c.sip_password,
                                          ACCOUNTS.c.key_id)
                                .where(ACCOUNTS.c.user_id == old)):
            stored[row.ident] = (row.sip_password, row.key_id)
        conn.execute(sa.delete(ACCOUNTS).where(ACCOUNTS.c.user_id == old))
        conn.execute(sa.delete(USERS).where(USERS.c.id == old))
    for account in spec.accounts:
        if not account.sip_password:
            if account.ident not in stored:
                raise _missing_sip_password(account)
            account.sealed = stored[account.ident]


def iter_export(state: SqlState, *, with_secrets: bool) -> Iterator[dict[str, Any]]:
    """Every user with their accounts, in username order, without N+1 queries."""
    box = state.require_box() if with_secrets else None
    users_q = (sa.select(USERS, TENANTS.c.name.label("tenant"))
               .select_from(USERS.outerjoin(TENANTS, USERS.c.tenant_id == TENANTS.c.id))
               .order_by(USERS.c.username))
    with unavailable_on_error(state.url), state.engine.connect() as conn:
        accounts: dict[int, list[Mapping[Any, Any]]] = {}
        for row in conn.execute(sa.select(ACCOUNTS).order_by(ACCOUNTS.c.user_id,
                                                             ACCOUNTS.c.position,
                                                             ACCOUNTS.c.id)):
            accounts.setdefault(row.user_id, []).append(row._mapping)
        for user in conn.execute(users_q):
            yield user_document(user._mapping, accounts.get(user.id, []), box)


#: What makes a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_LEADS = frozenset("=+-@\t\r")


def _formula_like(value: str) -> bool:
    return value[:1] in FORMULA_LEADS or (value[:1] == "'" and _formula_like(value[1:]))


def neutralise_cell(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula gets a leading ``'`` (OWASP). Reversible:
    a value that already starts with ``'`` before such a character gets one more, and
    :func:`restore_cell` takes exactly one off, so export and import round-trip."""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    return value[1:] if value[:1] == "'" and _formula_like(value[1:]) else value


class _NeutralisingWriter(csv.DictWriter):  # type: ignore[type-arg]
    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: neutralise_cell(value) for key, value in rowdict.items()})


def export_csv(docs: Iterator[dict[str, Any]], out: io.TextIOBase | Any) -> None:
    writer = _NeutralisingWriter(out, fieldnames=[c for c in CSV_COLUMNS if c != "password"])
    writer.writeheader()
    for doc in docs:
        base = {key: doc[key] for key in USER_KEYS if key in doc}
        base["overrides"] = json.dumps(doc["overrides"]) if doc["overrides"] else ""
        base["enabled"] = "true" if doc["enabled"] else "false"
        if not doc["accounts"]:
            writer.writerow(base)
        for first, account in enumerate(doc["accounts"]):
            row = dict(base) if first == 0 else {"username": doc["username"]}
            for key in ("ident", "sip_username", "sip_password", "domain"):
                row[key] = account.get(key, "")
            for name in ACCOUNT_OPTIONAL:
                row["account_profile" if name == "profile" else name] = account[name]
            row["account_overrides"] = (json.dumps(account["overrides"])
                                        if account["overrides"] else "")
            writer.writerow(row)
