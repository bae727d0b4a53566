"""The console end to end in headless Chromium (Debian's, driven by Playwright) against the
real server: sign in with an API key, find a user, clear their lockout, issue a token and read
its QR code back from a screenshot, then redeem it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, BrowserContext

from tests.console.conftest import ALICE_PASSWORD, COOKIE, ConsoleServer
from tests.portal.test_portal_browser import _submit, browser, decode_qr
from zengine.webforms import CSP

__all__ = ["browser"]  # the Chromium fixture, shared with the portal's browser tests
pytestmark = pytest.mark.subprocess


@pytest.fixture
def desk(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


def test_help_desk_clears_a_lockout_and_hands_out_a_setup_code(
        desk: BrowserContext, console: ConsoleServer) -> None:
    for n in range(4):
        console.login("alice", f"wrong-{n}")
    assert b"<account>" not in console.login("alice", ALICE_PASSWORD).content  # locked out

    page = desk.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    first = page.goto(f"{console.server.base}/console")
    assert first is not None and first.headers["content-security-policy"] == CSP
    page.fill("#api_key", "zk_not-a-key")
    assert _submit(page, "#signin-key").status == 403
    assert page.text_content(".error") == "Wrong API key."
    page.fill("#api_key", console.keys["admin"])
    signed = _submit(page, "#signin-key")
    assert signed.status == 200 and page.url == f"{console.server.base}/console"
    assert console.keys["admin"] not in page.content()
    (cookie,) = [c for c in desk.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

    # Find the user.
    page.fill("#q", "ali")
    _submit(page, "#search")
    assert page.locator("table.users a").all_text_contents() == ["alice"]
    _submit(page, "table.users a")
    assert page.text_content("h1") == "alice"
    assert "alice-office" in (page.text_content("#accounts") or "")
    recent = page.text_content("#recent") or ""
    assert "login.refused" in recent and "login.locked" in recent

    # Clear the lockout: the phone gets in again.
    assert page.locator("#lockouts .clear-lockout").count() >= 1
    _submit(page, "#lockouts .clear-lockout")
    assert "Lockout cleared" in (page.text_content(".message") or "")
    assert page.locator("#no-lockouts").count() == 1
    assert b"<account>" in console.login("alice", ALICE_PASSWORD).content

    # Issue a setup code; read the QR the help desk shows the user.
    _submit(page, "#issue-token")
    link = decode_qr(page.locator(".qr").screenshot())
    assert page.get_attribute("#token-link", "href") == link
    token = parse_qs(urlsplit(link).query)["t"][0]
    fetched = httpx.get(f"{console.server.base}/token", params={"id": token}, timeout=10)
    assert b"Tea&amp;Cakes&lt;3" in fetched.content
    assert page.locator("#tokens .state").first.text_content() == "active"

    assert not [m for m in messages if "Content Security Policy" in m], messages
    output = console.server.output()
    for secret in (console.keys["admin"], cookie["value"], token):
        assert secret not in output
