"""The portal with tenants, over real HTTP against the real server process: a sign-in is
resolved like a phone's login (host, login suffix), the setup code it issues is its tenant's,
and "sign out my other devices" revokes only that tenant's alice's codes."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.serverproc import Server, running_server
from tests.tenants_kit import HOSTS, PASSWORDS, config, served_sip

SESSION_KEY = "portal-tenant-session-key-0123456789abcdef"


class Browser:
    """One browser's cookie by hand: the portal's cookie is ``__Secure-``, which a client
    only returns over HTTPS, and this server speaks plain HTTP on loopback."""

    def __init__(self, server: Server, host: str) -> None:
        self.server, self.host, self.cookie = server, host, ""

    def request(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"host": self.host, **({"cookie": self.cookie} if self.cookie else {})}
        answer = httpx.request(method, self.server.base + path, headers=headers, timeout=30,
                               **kw)  # type: ignore[arg-type]
        if "set-cookie" in answer.headers:
            self.cookie = answer.headers["set-cookie"].split(";", 1)[0]
        return answer

    def csrf(self, page: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match is not None, page
        return match.group(1)

    def sign_in(self, username: str, password: str) -> httpx.Response:
        csrf = self.csrf(self.request("GET", "/portal").text)
        return self.request("POST", "/portal/signin",
                            data={"csrf": csrf, "username": username, "password": password})


def token_of(page: str) -> str:
    match = re.search(r"[?&]t=([A-Za-z0-9_-]+)", html.unescape(page))
    assert match is not None, page
    return match.group(1)


@pytest.mark.subprocess
def test_portal_sign_in_tokens_and_revocation_stay_in_their_tenant(tmp_path: Path) -> None:
    env = {"ZENGINE_SERVER__PUBLIC_URL": "https://prov.example.com",
           "ZENGINE_PLUGINS__TOKENS__SQLITE_PATH": str(tmp_path / "tokens.db"),
           "ZENGINE_PLUGINS__TOKENS__PROVIDER_ID": "zengine-test",
           "ZENGINE_PLUGINS__PORTAL__ENABLED": "true",
           "ZENGINE_PLUGINS__PORTAL__SESSION_KEY": SESSION_KEY}
    with running_server(config(tmp_path), tmp_path, env=env) as server:
        acme = Browser(server, HOSTS["acme"])          # resolved by host
        globex = Browser(server, "portal.example")     # resolved by the login suffix
        # The other tenant's password does not sign in.
        assert acme.sign_in("alice", PASSWORDS["globex"]).status_code == 403
        signed = acme.sign_in("alice", PASSWORDS["acme"])
        assert signed.status_code == 200, signed.text
        acme_token = token_of(signed.text)
        signed = globex.sign_in("alice@globex", PASSWORDS["globex"])
        assert signed.status_code == 200, signed.text
        globex_token = token_of(signed.text)
        # acme's alice signs out her other devices: her codes go, globex's alice's stay.
        home = acme.request("GET", "/portal")
        revoked = acme.request("POST", "/portal/revoke", data={"csrf": acme.csrf(home.text)})
        assert "1 unused setup code was" in revoked.text, revoked.text
        refused = httpx.get(f"{server.base}/token", params={"id": acme_token}, timeout=30)
        assert served_sip(refused.content) == set()
        document = httpx.get(f"{server.base}/token", params={"id": globex_token}, timeout=30)
        assert served_sip(document.content) == {"globex"}, document.text
        output = server.output()
    assert '"event": "audit.portal.signin"' in output
    assert '"tenant": "globex"' in output and acme_token not in output
