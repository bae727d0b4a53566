"""The portal with tenants, in-process: the cases the real-server test leaves out. The global
users file holds an alice with the same account ident as acme's alice, and no default tenant
is set: a sign-in checked by the global runtime would hand out the global alice's code, or
let her in from a host no tenant claims.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.conftest import BUILTINS
from tests.tenants_kit import FAST, HOSTS, PASSWORDS, SIP_SECRET, config
from zengine.app import create_app
from zengine.passwords import Passwords
from zengine.settings import load_settings
from zengine.testing import plugin_list

KEY = "portal-tenants-session-key-0123456789abcdef"
GLOBAL_SECRET = "GlobalAliceSipSecret7"
WRONG = "Wrong username or password."


@pytest.fixture
def app(tmp_path: Path) -> object:
    users = tmp_path / "global-users.toml"
    users.write_text(f"""
[users.alice]
password_hash = "{Passwords(FAST).hash("global-pass")}"
[[users.alice.accounts]]
ident = "acme-1"
sip_username = "global-sip-alice"
sip_password = "{GLOBAL_SECRET}"
domain = "sip.global.example"
""", encoding="utf-8")
    users.chmod(0o600)
    path = config(tmp_path, extra=f"""
[plugins.static]
users_file = "global-users.toml"
[plugins.tokens]
token_url = "https://prov.example.net/token?id="
provider_id = "zengine-test"
sqlite_path = "tokens.db"
[plugins.portal]
enabled = true
session_key = "{KEY}"
""")
    settings = load_settings(path, environ={})
    return create_app(settings, load_entrypoints=False,
                      plugins=plugin_list(*BUILTINS, "tokens", "portal"))


@pytest.fixture
def clients(app: object) -> Iterator[dict[str, TestClient]]:
    # https: the session cookie is Secure. One client per host, as phones' browsers are.
    made = {name: TestClient(app, base_url=f"https://{host}")  # type: ignore[arg-type]
            for name, host in {**HOSTS, "nowhere": "prov.nowhere.example"}.items()}
    for client in made.values():
        client.__enter__()
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


def _sign_in(client: TestClient, username: str, password: str) -> str:
    page = client.get("/portal").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, page
    reply = client.post("/portal/signin", data={"csrf": match.group(1), "username": username,
                                                 "password": password})
    return reply.text


def _token(page: str) -> str:
    match = re.search(r"qr-howto\.php\?[^\"']*?t=([A-Za-z0-9_-]{43})", html.unescape(page))
    assert match is not None, page
    return match.group(1)


def _redeemed(client: TestClient, token: str) -> str | None:
    reply = client.get("/token", params={"id": token})
    return etree.fromstring(reply.content).findtext("accounts/account/password")


def test_a_tenants_user_signs_in_on_its_host_and_gets_its_own_setup_code(
        clients: dict[str, TestClient]) -> None:
    page = _sign_in(clients["acme"], "alice", PASSWORDS["acme"])
    assert _redeemed(clients["acme"], _token(page)) == SIP_SECRET["acme"]


def test_a_login_suffix_places_the_sign_in_too(clients: dict[str, TestClient]) -> None:
    page = _sign_in(clients["nowhere"], "alice@globex", PASSWORDS["globex"])
    assert _redeemed(clients["nowhere"], _token(page)) == SIP_SECRET["globex"]


def test_another_tenants_password_and_an_unknown_tenant_are_wrong_logins(
        clients: dict[str, TestClient]) -> None:
    assert WRONG in _sign_in(clients["globex"], "alice", PASSWORDS["acme"])
    # No default tenant: a host no tenant claims is refused like a wrong login, even with
    # the global alice's own password.
    assert WRONG in _sign_in(clients["nowhere"], "alice", "global-pass")
