"""Per-account URL signatures, with no zengine import: a billing server written in Python can
use this module as it is to check the requests it gets.

Each account gets its own key, derived from the one master secret the billing server and
zengine share (HMAC-SHA256 of the account ident), and each signed URL carries three query
parameters::

    zb_account=<ident>&zb_field=<balance_url|rate_url>&zb_sig=<hex HMAC-SHA256>

The signature covers the field and the account ident, not the rest of the URL: Zoiper fills
in ``${CURRENCY}``, ``${DESTINATION}`` ... before it sends the request, so the URL the
billing server receives is not the one zengine signed, but the account and field are.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, urlencode, urlsplit

PARAMS = ("zb_account", "zb_field", "zb_sig")
_CONTEXT = b"zengine-example-billing/v1/"


def account_key(secret: bytes, ident: str) -> bytes:
    """The per-account key: what a billing server that stores one key per account keeps."""
    return hmac.new(secret, _CONTEXT + ident.encode("utf-8"), hashlib.sha256).digest()


def signature(secret: bytes, ident: str, field: str) -> str:
    message = f"{field}\n{ident}".encode()
    return hmac.new(account_key(secret, ident), message, hashlib.sha256).hexdigest()


def sign_url(url: str, secret: bytes, ident: str, field: str) -> str:
    """``url`` with the three parameters added (before any ``#fragment``)."""
    base, hash_mark, fragment = url.partition("#")
    if any(f"{name}=" in base for name in PARAMS):
        raise ValueError(f"{field} already carries signature parameters")
    query = urlencode({"zb_account": ident, "zb_field": field,
                       "zb_sig": signature(secret, ident, field)})
    joiner = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        joiner = ""
    return f"{base}{joiner}{query}{hash_mark}{fragment}"


def verify_url(url: str, secret: bytes) -> str | None:
    """The account ident a URL is validly signed for, or ``None``."""
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    if any(len(params.get(name, ())) != 1 for name in PARAMS):
        return None  # missing or repeated: refuse rather than guess which one counts
    ident, field, given = (params[name][0] for name in PARAMS)
    if not hmac.compare_digest(signature(secret, ident, field), given):
        return None
    return ident
