"""``zengine billing sign|verify``: what an operator needs when a billing request is refused."""

from __future__ import annotations

import argparse
import sys

from zengine.api import Runtime
from zengine_example_billing.signing import sign_url, verify_url


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="billing_command", metavar="ACTION", required=True)
    sign = sub.add_parser("sign", help="print URL signed for an account",
                          description="Print URL with the signature parameters for ACCOUNT.")
    sign.add_argument("url", metavar="URL")
    sign.add_argument("--account", required=True, help="the account ident")
    sign.add_argument("--field", default="balance_url",
                      choices=("balance_url", "rate_url", "quality_rating_url"))
    verify = sub.add_parser("verify", help="check a signed URL; exit status 0 if valid",
                            description="Check the signature of URL (as the billing server "
                                        "received it) and print the account it is for.")
    verify.add_argument("url", metavar="URL")


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    from zengine_example_billing import secret_of

    secret = secret_of(runtime)
    if secret is None:
        print("zengine billing: no [plugins.example_billing] secret is configured",
              file=sys.stderr)
        return 2
    if args.billing_command == "sign":
        try:
            print(sign_url(args.url, secret, args.account, args.field))
        except ValueError as exc:
            print(f"zengine billing: {exc}", file=sys.stderr)
            return 1
        return 0
    account = verify_url(args.url, secret)
    if account is None:
        print("invalid: the signature does not match (wrong secret, or the URL was changed)")
        return 1
    print(f"valid: account {account}")
    return 0
