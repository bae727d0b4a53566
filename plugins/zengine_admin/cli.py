"""``zengine apikeys create|list|revoke``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from zengine.errors import BackendUnavailable
from zengine.models import AuditEvent, Command
from zengine_admin.keys import SCOPES, ApiKey, key_store, utcnow
from zengine_admin.settings import NAME
from zengine_tokens.settings import parse_duration

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser(
        "create", help="make an API key and print it once",
        description="Make an API key for the admin API (/api/v1) and print it once; zengine "
                    "keeps only its HMAC-SHA256 digest.")
    create.add_argument("--name", required=True,
                        help="who the key is (the audit trail's actor), unique")
    create.add_argument("--scope", required=True, choices=SCOPES,
                        help="read: every GET; tokens: read, plus issue and revoke tokens; "
                             "write: everything")
    create.add_argument("--tenant", default=None,
                        help="the one tenant the key may see (default: every tenant)")
    create.add_argument("--expires", type=_duration, metavar="DURATION",
                        help="lifetime, e.g. 90d, 12h (default: until revoked)")
    create.add_argument("--allow", action="append", default=[], metavar="CIDR",
                        help="only from this network (repeat, or comma-separate; default: "
                             "anywhere)")
    lst = sub.add_parser("list", help="list API keys (name, scope, state; never the key)",
                         description="List API keys: name, id, scope, tenant, state, expiry "
                                     "and last use. Never the key.")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    revoke = sub.add_parser("revoke", help="revoke a key by name or id",
                            description="Revoke a key by name or id; it stops working at once.")
    revoke.add_argument("key", metavar="NAME|ID", help="the key's name or id (from list)")
    for child in (create, lst, revoke):
        child.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                           help="config file (default: $ZENGINE_CONFIG)")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _row(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "scope": key.scope, "tenant": key.tenant,
            "allow": [str(n) for n in key.allow], "state": key.state(utcnow()),
            "created": key.created.isoformat(),
            "expires": key.expires.isoformat() if key.expires else None,
            "last_used": key.last_used.isoformat() if key.last_used else None,
            "last_used_addr": key.last_used_addr}


def _audit(runtime: Runtime, what: str, name: str, detail: str = "") -> None:
    runtime.hooks.audit(AuditEvent(event=f"admin.{what}", outcome="ok", backend=NAME,
                                   client_addr="cli",
                                   detail=f"key={name} actor=cli {detail}".strip()), runtime)


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    try:
        store = key_store(runtime)
        if args.action == "create":
            created = store.create(args.name, args.scope, tenant=args.tenant,
                                   expires=args.expires, allow=args.allow)
            info = created.info
            print(f"key:     {created.key}")
            print(f"         (shown this once: zengine keeps only its digest; store: "
                  f"{store.backend})")
            print(f"name:    {info.name}  id: {info.id}  scope: {info.scope}")
            print(f"tenant:  {info.tenant or 'every tenant'}  expires: {_when(info.expires)}"
                  f"  allow: {', '.join(str(n) for n in info.allow) or 'anywhere'}")
            _audit(runtime, "key_created", info.name, f"scope={info.scope}")
            return 0
        if args.action == "list":
            keys = store.list()
            if args.json:
                for key in keys:
                    print(json.dumps(_row(key)))
                return 0
            print(f"{'NAME':20} {'ID':12} {'SCOPE':6} {'TENANT':12} {'STATE':8} "
                  f"{'EXPIRES':20} LAST USE")
            now = utcnow()
            for key in keys:
                last = f"{_when(key.last_used)} {key.last_used_addr or ''}".strip()
                print(f"{key.name:20} {key.id:12} {key.scope:6} {key.tenant or '*':12} "
                      f"{key.state(now):8} {_when(key.expires):20} {last}")
            return 0
        revoked = store.revoke(args.key)
        if revoked is None:
            print(f"zengine: no live API key named {args.key!r} (or with that id)",
                  file=sys.stderr)
            return 1
        _audit(runtime, "key_revoked", revoked.name)
        print(f"revoked {revoked.name} ({revoked.id})")
        return 0
    except ValueError as exc:
        print(f"zengine: {exc}", file=sys.stderr)
        return 1
    except BackendUnavailable as exc:
        print(f"zengine: the API key store is unavailable: {exc.detail}", file=sys.stderr)
        return 1


def commands() -> list[Command]:
    return [Command(name="apikeys", help="admin API keys: create, list, revoke",
                    configure=configure, run=run)]
