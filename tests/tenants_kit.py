"""Two tenants with the same username: acme's alice and globex's alice have different
passwords and different SIP accounts, so any crossing shows in the document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zengine.passwords import Passwords, PasswordSettings
from zengine.tenancy import key_digest

FAST = PasswordSettings(time_cost=1, memory_kib=64, parallelism=1)
PATH_SECRET = "p" * 40
#: 256-bit path keys (what `zengine tenant-key` makes); two for acme: a rotation.
KEYS = {"acme": ["AcmeKeyOne-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "AcmeKeyTwo-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"],
        "globex": ["GlobexKey-cccccccccccccccccccccccccccccccccccc"]}
PASSWORDS = {"acme": "acme-pass-1", "globex": "globex-pass-2"}
SIP = {"acme": "acme-sip-alice", "globex": "globex-sip-alice"}
SIP_SECRET = {"acme": "AcmeSipSecret9", "globex": "GlobexSipSecret8"}
HOSTS = {"acme": "prov.acme.example", "globex": "x.globex.example"}


def users_file(path: Path, tenant: str) -> Path:
    hashed = Passwords(FAST).hash(PASSWORDS[tenant])
    path.write_text(f"""
[users.alice]
password_hash = "{hashed}"
[[users.alice.accounts]]
ident = "{tenant}-1"
sip_username = "{SIP[tenant]}"
sip_password = "{SIP_SECRET[tenant]}"
domain = "sip.{tenant}.example"
""", encoding="utf-8")
    path.chmod(0o600)
    return path


def config(tmp_path: Path, *, extra: str = "", resolve: str | None = None,
           default: str | None = None, sql: str | None = None) -> Path:
    """A config with tenants acme and globex on per-tenant users files, or (``sql``: the
    ``[plugins.sql]`` table) on the shared SQL schema."""
    for tenant in ("acme", "globex"):
        if sql is None:
            users_file(tmp_path / f"{tenant}-users.toml", tenant)
    digests = {t: [key_digest(PATH_SECRET.encode(), k) for k in keys]
               for t, keys in KEYS.items()}
    chain = f"resolve = {resolve}\n" if resolve else ""
    fallback = f'default = "{default}"\n' if default else ""
    text = f"""
[server]
paths = ["/id.php"]
[passwords]
time_cost = 1
memory_kib = 64
parallelism = 1
[auth]
chain = ["{'static' if sql is None else 'sql'}"]
failure_floor_ms = 0
[tenants]
{chain}{fallback}path_key_secret = "{PATH_SECRET}"
[tenants.acme]
hosts = ["{HOSTS['acme']}"]
path_keys = {digests['acme']!r}
[tenants.acme.document]
customer_sid = "acme-sid"
{'' if sql is not None else '[tenants.acme.plugins.static]'}
{'' if sql is not None else 'users_file = "acme-users.toml"'}
[tenants.globex]
hosts = ["*.globex.example"]
path_keys = {digests['globex']!r}
suffixes = ["globex", "globex.example"]
{'' if sql is not None else '[tenants.globex.plugins.static]'}
{'' if sql is not None else 'users_file = "globex-users.toml"'}
{sql or ''}
{extra}
"""
    path = tmp_path / "zengine.toml"
    path.write_text(text.replace("'", '"'), encoding="utf-8")
    return path


def served_sip(body: bytes) -> set[str]:
    """Which tenants' SIP accounts a document carries."""
    text = body.decode("utf-8", "replace")
    return {tenant for tenant, sip in SIP.items() if sip in text}


def error_text(body: bytes) -> str | None:
    match = re.search(rb"<error[^>]*>(.*?)</error>", body, re.S)
    return match.group(1).decode() if match else None


def login(tenant: str, how: str, password_of: str | None = None) -> dict[str, Any]:
    """Path, params and headers of alice's login to ``tenant`` resolved by ``how``."""
    password = PASSWORDS[password_of or tenant]
    path, username, headers = "/id.php", "alice", {"host": "unrelated.example"}
    if how == "host":
        headers = {"host": HOSTS[tenant] + ":8080"}
    elif how == "path_key":
        path = f"/t/{KEYS[tenant][-1]}/id.php"
    elif how == "login_suffix":
        username = f"alice@{tenant}"
    else:  # pragma: no cover - a typo in a test
        raise ValueError(how)
    return {"path": path, "params": {"username": username, "password": password},
            "headers": headers}
