"""``zengine tokens issue|list|revoke|purge``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zengine.models import Command
from zengine_tokens.api import TokenInfo, token_service
from zengine_tokens.qr import qr_png, qr_svg, qr_text
from zengine_tokens.settings import parse_duration

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _action(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    parser.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                        help="config file (default: $ZENGINE_CONFIG)")
    parser.add_argument("--tenant", default="", help="tenant (default: none)")
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = _action(sub, "issue", "issue a token for USER and print it once, with its link "
                                  "and a QR code; older tokens for the same account are revoked")
    issue.add_argument("username", metavar="USER", help="the user the token logs in")
    issue.add_argument("--account", metavar="IDENT",
                       help="one account (default: all of the user's accounts)")
    issue.add_argument("--ttl", type=_duration, metavar="DURATION",
                       help="lifetime, e.g. 72h, 30m, 7d (default: [plugins.tokens] ttl)")
    issue.add_argument("--uses", type=int, metavar="N",
                       help="fetches allowed (default: [plugins.tokens] max_uses)")
    issue.add_argument("--keep-older", action="store_true",
                       help="do not revoke the user's older tokens for this account")
    issue.add_argument("--no-qr", action="store_true", help="print no terminal QR code")
    issue.add_argument("--png", type=Path, metavar="FILE",
                       help="also write the QR code as PNG (mode 0600: it holds the token)")
    issue.add_argument("--svg", type=Path, metavar="FILE", help="also write it as SVG (0600)")
    lst = _action(sub, "list", "list tokens (id and state, never the token)")
    lst.add_argument("username", metavar="USER", nargs="?",
                     help="only this user's tokens (default: everybody's)")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    revoke = _action(sub, "revoke", "revoke one token by id, or every token of a user")
    what = revoke.add_mutually_exclusive_group(required=True)
    what.add_argument("id", metavar="ID", nargs="?", help="the token's id (from list)")
    what.add_argument("--user", metavar="USER", help="every token of this user instead")
    purge = _action(sub, "purge", "delete expired tokens")
    purge.add_argument("--all-tenants", action="store_true",
                       help="every expired token in every configured token store, whatever "
                            "its tenant (also of a tenant no longer in the config)")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _row(info: TokenInfo) -> dict[str, Any]:
    return {"id": info.id, "user": info.username, "account": info.account, "tenant": info.tenant,
            "state": info.state, "uses": info.uses, "max_uses": info.max_uses,
            "purpose": info.purpose, "created": info.created.isoformat(),
            "expires": info.expires.isoformat(),
            "last_used": info.last_used.isoformat() if info.last_used else None,
            "last_used_addr": info.last_used_addr, "issued_by": info.issued_by}


def _issue(args: argparse.Namespace, runtime: Runtime) -> int:
    service = token_service(runtime)
    issued = service.issue(args.username, tenant=args.tenant, account=args.account,
                           ttl=args.ttl, uses=args.uses, revoke_older=not args.keep_older,
                           actor="cli", client_addr="cli")
    print(f"token:   {issued.token}")
    print("         (shown this once: zengine keeps only its SHA-256)")
    print(f"id:      {issued.id}")
    print(f"user:    {issued.username}  account: {issued.account or 'all'}")
    print(f"expires: {_when(issued.expires)}  uses: {issued.max_uses}")
    if issued.link:
        print(f"link:    {issued.link}")
        if not args.no_qr:
            print(qr_text(issued.link), end="")
        if args.png is not None:
            _write_private(args.png, qr_png(issued.link))
        if args.svg is not None:
            _write_private(args.svg, qr_svg(issued.link).encode("utf-8"))
    else:
        print("zengine: no link: set [server] public_url (the token URL) and [plugins.tokens] "
              "provider_id (the Zoiper QR-howto link)", file=sys.stderr)
    if service.config.provider_id is None and issued.link:
        print("zengine: [plugins.tokens] provider_id is not set: the link is the token URL "
              "itself, not Zoiper's QR-howto page", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace, runtime: Runtime) -> int:
    infos = token_service(runtime).list(args.username, tenant=args.tenant)
    if args.json:
        for info in infos:
            print(json.dumps(_row(info)))
        return 0
    print(f"{'ID':12}  {'USER':16} {'ACCOUNT':16} {'STATE':8} {'USES':5} {'EXPIRES':20} "
          "LAST USE")
    for info in infos:
        last = f"{_when(info.last_used)} {info.last_used_addr or ''}".strip()
        print(f"{info.id:12}  {info.username:16} {info.account or '*':16} {info.state:8} "
              f"{info.uses}/{info.max_uses:<3} {_when(info.expires):20} {last}")
    return 0


def _revoke(args: argparse.Namespace, runtime: Runtime) -> int:
    service = token_service(runtime)
    if args.user is not None:
        count = service.revoke_user(args.user, tenant=args.tenant, actor="cli",
                                    client_addr="cli")
        print(f"revoked {count} token(s) of {args.user}")
        return 0
    info = service.revoke(args.id, tenant=args.tenant, actor="cli", client_addr="cli")
    if info is None:
        print(f"zengine: no token {args.id!r} that could be revoked", file=sys.stderr)
        return 1
    print(f"revoked {info.id} ({info.username})")
    return 0


def _purge(args: argparse.Namespace, runtime: Runtime) -> int:
    if args.all_tenants:
        top = runtime.root or runtime
        # Each store once is enough; a store shared by several runtimes has nothing left.
        count = sum(token_service(rt).purge(tenant=None)
                    for rt in (top, *top.tenants.values()))
        print(f"purged {count} expired token(s) of every tenant")
        return 0
    count = token_service(runtime).purge(tenant=args.tenant)
    print(f"purged {count} expired token(s)" + (f" of tenant {args.tenant!r}" if args.tenant
                                                  else ""))
    return 0


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    actions = {"issue": _issue, "list": _list, "revoke": _revoke, "purge": _purge}
    tenant: str = getattr(args, "tenant", "")
    if getattr(args, "all_tenants", False) and tenant:
        print("zengine: give --tenant or --all-tenants, not both", file=sys.stderr)
        return 2
    # The tenant's own runtime: its users (the issue check) and its token store, not the
    # global ones.
    served = runtime.for_tenant(tenant)
    if served is None:
        print(f"zengine: no tenant {tenant!r}; configured: "
              f"{', '.join(sorted((runtime.root or runtime).tenants)) or 'none'}",
              file=sys.stderr)
        return 2
    try:
        return actions[args.action](args, served)
    except ValueError as exc:
        print(f"zengine: {exc}", file=sys.stderr)
        return 1


def commands() -> list[Command]:
    return [Command(name="tokens", help="provisioning tokens: issue, list, revoke, purge",
                    configure=configure, run=run)]
