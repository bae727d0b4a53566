"""A portal and a console signed with the same session key (one key file given to both) must
still not accept each other's cookies: a portal user's cookie is no console session."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from itsdangerous import TimestampSigner

from tests.admin.conftest import write_config
from tests.console.conftest import ALICE_PASSWORD, SESSION_KEY, Browser, ConsoleServer, csrf_of
from tests.serverproc import running_server
from zengine.webforms import signing_key

pytestmark = pytest.mark.subprocess
PORTAL_COOKIE = "__Secure-zengine-portal"


def _cookie(response: httpx.Response) -> str:
    match = re.search(rf"{PORTAL_COOKIE}=([^;]*)", response.headers["set-cookie"])
    assert match is not None
    return match.group(1)


def _portal_cookie(base: str) -> str:
    """Alice signs in to the portal: the value of her session cookie (kept by hand: it is
    ``__Secure-``, and this server speaks plain HTTP)."""
    page = httpx.get(f"{base}/portal")
    signed = httpx.post(f"{base}/portal/signin",
                        data={"csrf": csrf_of(page.text), "username": "alice",
                              "password": ALICE_PASSWORD},
                        headers={"Cookie": f"{PORTAL_COOKIE}={_cookie(page)}"})
    assert signed.status_code == 200, signed.text
    return _cookie(signed)


@pytest.mark.parametrize("ldap_group", [None, "admins"])
def test_a_portal_cookie_is_no_console_session(tmp_path: Path, ldap_group: str | None) -> None:
    config = write_config(tmp_path)
    with config.open("a", encoding="utf-8") as out:
        out.write(f'\n[plugins.portal]\nenabled = true\nsession_key = "{SESSION_KEY}"\n'
                  f'[plugins.console]\nenabled = true\nsession_key = "{SESSION_KEY}"\n')
        if ldap_group is not None:
            out.write(f'ldap_admin_group = "{ldap_group}"\n')
    with running_server(config, tmp_path) as server:
        console = Browser(server.base, cookie=_portal_cookie(server.base))
        page = console.get("/console")
        assert 'name="api_key"' in page.text, page.text  # the sign-in page: nobody
        assert "alice" not in page.text
        refused = console.post("/console/lockouts/clear",
                               {"csrf": csrf_of(page.text), "name": "bob", "user": "bob"})
        assert refused.status_code == 403


def test_only_a_directory_sign_in_makes_a_directory_admin(console: ConsoleServer) -> None:
    """A validly signed session that no directory sign-in made (no ``via``), or a directory
    admin's while ``ldap_admin_group`` is unset (as on this server: keys only), is nobody."""
    signer = TimestampSigner(signing_key(SESSION_KEY, "console"))
    for extra in ({}, {"via": "ldap"}):
        session = {"user": "helpdesk", "tenant": "", "sid": f"forged{len(extra)}",
                   "since": time.time(), "csrf": "c" * 43, **extra}
        cookie = signer.sign(base64.b64encode(json.dumps(session).encode())).decode()
        page = Browser(console.server.base, cookie=cookie).get("/console")
        assert 'name="api_key"' in page.text, page.text
