"""``zengine users …`` and ``zengine db …``. Passwords come from a prompt or stdin, never argv."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import sqlalchemy as sa

from zengine.models import Command
from zengine_sql import admin, migrate, specs
from zengine_sql.crypto import generate_key
from zengine_sql.engine import unavailable_on_error
from zengine_sql.state import SqlState

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _state(runtime: Runtime) -> SqlState:
    from zengine_sql import get_state

    state = get_state(runtime)
    if state is None:
        raise specs.AdminError("the SQL backend is not configured: set [plugins.sql] url "
                               "(or ZENGINE_PLUGINS__SQL__URL)")
    return state


def read_password(what: str) -> str:
    """From the terminal (asked twice) or the first line of stdin (scripts)."""
    if sys.stdin.isatty():
        try:
            password = getpass.getpass(f"{what}: ")
            if getpass.getpass("Repeat: ") != password:
                raise specs.AdminError("passwords do not match")
        except EOFError:
            raise specs.AdminError(f"no {what.lower()} given") from None
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise specs.AdminError(f"empty {what.lower()} refused")
    return password


def _overrides(text: str | None, *, account: bool) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise specs.AdminError(f"--overrides is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise specs.AdminError("--overrides must be a JSON object")
    specs.check_overrides(value, "--overrides", account=account)
    return value


def _guard(run: Any) -> Any:
    def wrapped(args: argparse.Namespace, runtime: Runtime) -> int:
        try:
            return int(run(args, runtime))
        except specs.AdminError as exc:
            print(f"zengine: {exc}", file=sys.stderr)
            return 1
    return wrapped


def _action(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    # Also accept --config after the action (`zengine users add alice -c zengine.toml`);
    # SUPPRESS keeps the value given before the action when it is not repeated here.
    parser.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                        help="config file (default: $ZENGINE_CONFIG)")
    return parser


# --- users -----------------------------------------------------------------------------------


def _users_configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = _action(sub, "add", "add a user (password from the prompt or stdin)")
    add.add_argument("username", help="login name, unique within the tenant")
    add.add_argument("--profile", help="a [profiles.<name>] of the config (default: none)")
    add.add_argument("--display-name", help="the user's name as shown (default: none)")
    add.add_argument("--overrides", help="JSON object of catalogue fields for this user")
    add.add_argument("--disabled", action="store_true",
                     help="add the user disabled (no provisioning until enabled)")
    add.add_argument("--no-password", action="store_true",
                     help="no provisioning login here (another backend logs the user in)")
    acc = _action(sub, "add-account", "add a SIP account (SIP password from stdin)")
    acc.add_argument("username", help="the user who gets the account")
    acc.add_argument("--ident", required=True, help="stable account id Zoiper matches on")
    acc.add_argument("--sip-username", required=True, help="the SIP user name")
    acc.add_argument("--domain", required=True, help="SIP domain (registrar)")
    for name in specs.ACCOUNT_OPTIONAL:
        acc.add_argument(f"--{name.replace('_', '-')}", help=specs.ACCOUNT_HELP[name])
    acc.add_argument("--overrides", help="JSON object of catalogue fields for this account")
    lst = _action(sub, "list", "list users")
    lst.add_argument("--json", action="store_true", help="JSON instead of one line a user")
    show = _action(sub, "show", "show one user and their accounts (no secrets)")
    show.add_argument("username", help="the user to show")
    setpw = _action(sub, "set-password",
                    "set the provisioning password, or with --sip a SIP password")
    setpw.add_argument("username", help="the user whose password to set")
    setpw.add_argument("--sip", metavar="IDENT", help="set this account's SIP password")
    for name in ("disable", "enable"):
        item = _action(sub, name, f"{name} a user's provisioning")
        item.add_argument("username", help=f"the user to {name}")
    delete = _action(sub, "delete", "delete a user (or with --account one account)")
    delete.add_argument("username", help="the user to delete, or whose account to delete")
    delete.add_argument("--account", metavar="IDENT",
                        help="delete only this account of the user")
    imp = _action(sub, "import", "import users from CSV or JSON, all or nothing")
    imp.add_argument("file", type=Path, help="a .csv or .json file (docs/backends/sql.md)")
    imp.add_argument("--format", choices=("csv", "json"), help="default: from the file suffix")
    imp.add_argument("--replace", action="store_true", help="replace users that exist")
    exp = _action(sub, "export", "export users as JSON or CSV")
    exp.add_argument("--format", choices=("json", "csv"),
                     help="default: from the --output suffix (.csv), else json")
    exp.add_argument("--output", "-o", type=Path, help="file (default: stdout)")
    exp.add_argument("--with-sip-passwords", action="store_true",
                     help="include decrypted SIP passwords (keep the file safe)")
    for child in (add, acc, lst, show, setpw, delete, *(
            sub.choices[name] for name in ("disable", "enable"))):
        child.add_argument("--tenant", help="the user's tenant ([tenants.<name>]); without it "
                           "the one user of that name (list: every tenant)")


def _users_run(args: argparse.Namespace, runtime: Runtime) -> int:
    state = _state(runtime)
    if state.mapping is not None:
        raise specs.AdminError("mode = 'mapping' reads the PBX's tables: manage those users "
                               "with the PBX's own tools")
    action = args.action
    tenant = getattr(args, "tenant", None)
    if tenant is not None and runtime.tenants and tenant not in runtime.tenants:
        # A typo would create a tenant no request can reach.
        raise specs.AdminError(f"tenant {tenant!r} is not configured; [tenants] has "
                               f"{', '.join(sorted(runtime.tenants))}")
    served = runtime.for_tenant(tenant or "") or runtime
    profiles = served.settings.profiles
    if action == "add":
        spec = specs.UserSpec(username=args.username, tenant=args.tenant, profile=args.profile,
                              display_name=args.display_name, enabled=not args.disabled,
                              overrides=_overrides(args.overrides, account=False))
        specs.check_user(spec, profiles)
        if not args.no_password:
            spec.password = read_password("Password")
        admin.add_user(state, spec)
        print(f"added user {args.username!r}")
    elif action == "add-account":
        account = specs.AccountSpec(
            ident=args.ident, sip_username=args.sip_username, domain=args.domain,
            sip_password="",
            optional={name: getattr(args, name) for name in specs.ACCOUNT_OPTIONAL},
            overrides=_overrides(args.overrides, account=True))
        specs.check_account(account, profiles)
        account.sip_password = read_password("SIP password")
        admin.add_account(state, args.username, account, tenant=tenant)
        print(f"added account {args.ident!r} to {args.username!r}")
    elif action == "list":
        users = admin.list_users(state, args.tenant)
        if args.json:
            print(json.dumps(users, indent=2, default=str))
        else:
            for user in users:
                flags = "" if user["enabled"] else " (disabled)"
                print(f"{user['username']}\ttenant={user['tenant'] or '-'}\t"
                      f"profile={user['profile'] or '-'}\taccounts={user['accounts']}{flags}")
    elif action == "show":
        doc = admin.show_user(state, args.username, tenant=tenant)
        doc["password_hash"] = "<set>" if doc["password_hash"] else None
        print(json.dumps(doc, indent=2, default=str))
    elif action == "set-password":
        if args.sip:
            admin.set_sip_password(state, args.username, args.sip, read_password("SIP password"),
                                   tenant=tenant)
        else:
            admin.set_password(state, args.username, read_password("Password"), tenant=tenant)
        print("password changed")
    elif action in ("disable", "enable"):
        admin.set_enabled(state, args.username, action == "enable", tenant=tenant)
        print(f"{action}d user {args.username!r}")
    elif action == "delete":
        if args.account:
            admin.delete_account(state, args.username, args.account, tenant=tenant)
            print(f"deleted account {args.account!r} of {args.username!r}")
        else:
            admin.delete_user(state, args.username, tenant=tenant)
            print(f"deleted user {args.username!r}")
    elif action == "import":
        return _import(state, args, runtime.settings.profiles)
    elif action == "export":
        return _export(state, args)
    return 0


def _import(state: SqlState, args: argparse.Namespace, profiles: Collection[str]) -> int:
    from zengine.passwords import cores
    from zengine_sql import transfer

    specs = transfer.read_file(args.file, args.format)
    plain = sum(spec.password is not None for spec in specs)
    workers = max(1, min(cores(), plain))
    if plain:
        print(f"importing users: hashing {_count(plain, 'password')} on "
              f"{_count(workers, 'process', 'es')} first", file=sys.stderr, flush=True)
    hashed = Progress("importing users: hashed", plain)
    written = Progress("importing users: wrote", len(specs))
    count = transfer.import_users(state, specs, replace=args.replace,
                                  progress=lambda n: written.advance(n), profiles=profiles,
                                  hash_progress=lambda done, _total: hashed.at(done),
                                  hash_workers=workers)
    accounts = sum(len(spec.accounts) for spec in specs)
    print(f"imported {_count(count, 'user')}, {_count(accounts, 'account')}")
    return 0


class Progress:
    """Progress lines on stderr (``label 300/1000``), terminal or not: an import run by cron or
    a pipe shows how far it got. A line at most every 2 seconds, and always the last."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        import time

        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self._clock = time.monotonic
        self._last = self._clock()

    def advance(self, count: int = 1) -> None:
        self.at(self.done + count)

    def at(self, done: int) -> None:
        self.done = done
        now = self._clock()
        if done >= self.total or now - self._last >= 2.0:
            self._last = now
            print(f"{self.label} {done}/{self.total}", file=self.stream, flush=True)


def _count(number: int, noun: str, plural: str = "s") -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}{plural}"


def _export(state: SqlState, args: argparse.Namespace) -> int:
    from zengine_sql import transfer

    docs = transfer.iter_export(state, with_secrets=args.with_sip_passwords)
    fmt: str = args.format or ("csv" if args.output and args.output.suffix.lower() == ".csv"
                          else "json")
    if not args.output:
        _write_export(docs, sys.stdout, fmt)
        return 0
    with private_file(Path(args.output)) as out:
        _write_export(docs, out, fmt)
    return 0


def _write_export(docs: Iterator[dict[str, Any]], out: TextIO, fmt: str) -> None:
    from zengine_sql import transfer

    if fmt == "csv":
        transfer.export_csv(docs, out)
    else:
        json.dump({"users": list(docs)}, out, indent=2, default=str)
        out.write("\n")


@contextlib.contextmanager
def private_file(target: Path) -> Iterator[TextIO]:
    """Write ``target`` as a new file of the caller's, mode 0600, or not at all.

    Hashes (and maybe SIP passwords) go in it. A symlink is refused (it could point at any
    file the caller may write); the data goes to a fresh file created exclusively next to the
    target and renamed over it when complete, so an existing file of someone else's is
    replaced, never written into, and an interrupted export leaves no half-written file.
    """
    if target.is_symlink():
        raise specs.AdminError(f"{target}: is a symbolic link; refusing to write through it")
    if target.exists() and not target.is_file():
        raise specs.AdminError(f"{target}: exists and is not a regular file")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    except OSError as exc:
        # The file the operator named, not the temporary one beside it.
        raise specs.AdminError(f"{target}: cannot write: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# --- db --------------------------------------------------------------------------------------


def _db_configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = _action(sub, "upgrade", "create or migrate zengine's own schema")
    up.add_argument("--revision", default="head",
                    help="the revision to migrate to (default: head, the newest)")
    down = _action(sub, "downgrade", "migrate the own schema back to REVISION")
    down.add_argument("revision", help="the revision to migrate to (base: no schema)")
    _action(sub, "current", "print the schema revision of the database")
    _action(sub, "rotate-key", "re-encrypt SIP passwords under encryption_key_id")
    _action(sub, "generate-key", "print a new random encryption key")
    _action(sub, "check", "check the database: schema revision, or the mapped tables and columns")


def _db_run(args: argparse.Namespace, runtime: Runtime) -> int:
    if args.action == "generate-key":
        print(generate_key())
        return 0
    state = _state(runtime)
    if state.mapping is not None and args.action in ("upgrade", "downgrade", "rotate-key"):
        raise specs.AdminError("mode = 'mapping' uses the PBX's tables; zengine's own schema "
                               "is not managed there")
    with unavailable_on_error(state.url):
        if args.action in ("upgrade", "downgrade"):
            _migrate(state, args.action, args.revision)
        elif args.action == "current":
            print(f"{migrate.current(state.engine) or 'empty'} (head: {migrate.head()})")
        elif args.action == "check":
            return _check(state)
        elif args.action == "rotate-key":
            count = admin.rotate_key(state)
            print(f"re-encrypted {count} SIP passwords under key {state.require_box().current!r}")
    return 0


def _migrate(state: SqlState, action: str, revision: str) -> None:
    from alembic.util import CommandError

    if not revision:
        # Alembic asserts on it (an AssertionError traceback) instead of saying so.
        raise specs.AdminError(f"db {action}: the revision is empty (a revision id, head, "
                               "base, +N or -N)")
    try:
        (migrate.upgrade if action == "upgrade" else migrate.downgrade)(state.engine, revision)
    except CommandError as exc:
        # An unknown or unreachable revision: Alembic's sentence, not its traceback.
        raise specs.AdminError(f"db {action} {revision}: {exc} (`zengine db current` prints "
                               "the database's revision and the newest)") from None
    print(f"schema at revision {migrate.current(state.engine)}")


def _check(state: SqlState) -> int:
    if state.mapping is None:
        revision, newest = migrate.current(state.engine), migrate.head()
        if revision != newest:
            print(f"schema at {revision or 'nothing'}, newest is {newest}: run "
                  "`zengine db upgrade`", file=sys.stderr)
            return 1
        print(f"own schema at revision {revision}: OK")
        return 0
    from zengine_sql.mapping import required_columns

    problems = []
    inspector = sa.inspect(state.engine)
    for table, columns in required_columns(state.mapping).items():
        if not inspector.has_table(table, schema=state.mapping.db_schema):
            problems.append(f"table {table!r} does not exist")
            continue
        present = {c["name"] for c in inspector.get_columns(table,
                                                            schema=state.mapping.db_schema)}
        problems += [f"table {table!r} has no column {name!r}"
                     for name in columns if name not in present]
    for problem in problems:
        print(f"zengine: [plugins.sql.mapping] {problem}", file=sys.stderr)
    if not problems:
        print("mapped tables and columns: OK")
    return 1 if problems else 0


def commands() -> list[Command]:
    return [
        Command(name="users", help="manage users and SIP accounts in the SQL backend",
                configure=_users_configure, run=_guard(_users_run)),
        Command(name="db", help="SQL backend schema: migrations, key rotation",
                configure=_db_configure, run=_guard(_db_run)),
    ]
