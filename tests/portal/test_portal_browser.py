"""The self-service page end to end in a real browser: Debian's Chromium, driven by Playwright,
against the real server; the QR code is read back from a screenshot and redeemed over HTTP."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
import zxingcpp
from lxml import etree
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright

from tests.conftest import service_missing
from tests.portal.conftest import ACCENT
from tests.serverproc import Server
from zengine.webforms import CSP
from zengine_portal.views import COOKIE

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# A mid-size phone in portrait.
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
                         "is_mobile": True, "has_touch": True}

ALICE_PASSWORD = "wonderland"

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        service_missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(**PHONE)
    try:
        yield context
    finally:
        context.close()


def _submit(page: Page, selector: str) -> Response:
    with page.expect_navigation() as navigation:
        page.click(selector)
    response = navigation.value
    assert response is not None
    return response


def sign_in(page: Page, server: Server, password: str = ALICE_PASSWORD) -> Response:
    page.goto(f"{server.base}/portal")
    page.fill("#username", "alice")
    page.fill("#password", password)
    return _submit(page, "form[action$='/signin'] button")


def decode_qr(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, f"{len(found)} codes in the screenshot"
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    text: str = found[0].text
    return text


def token_of(link: str) -> str:
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "oem.zoiper.com",
                                                         "/qr-howto.php")
    query = parse_qs(parts.query)
    # Only the provider and the token: never u=, p= or a= through a third party.
    assert sorted(query) == ["provider_id", "t"]
    assert query["provider_id"] == ["zengine-test"]
    return query["t"][0]


def fetch_token(server: Server, token: str) -> etree._Element:
    reply = httpx.get(f"{server.base}/token", params={"id": token}, timeout=10)
    assert reply.headers["cache-control"] == "no-store"
    root: etree._Element = etree.fromstring(reply.content)
    return root


def test_sign_in_scan_the_code_and_provision(phone: BrowserContext, portal_server: Server
                                             ) -> None:
    page = phone.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    first = page.goto(f"{portal_server.base}/portal")
    assert first is not None and first.status == 200
    headers = first.headers
    assert headers["content-security-policy"] == CSP
    assert headers["cache-control"] == "no-store"
    assert page.title() == "Sign in · Example Telecom"

    wrong = sign_in(page, portal_server, password="not-the-password")
    assert wrong.status == 403
    assert page.text_content("#error") == "Wrong username or password."
    assert page.input_value("#username") == "alice"
    assert page.input_value("#password") == ""
    assert page.locator("#qr").count() == 0

    right = sign_in(page, portal_server)
    assert right.status == 200 and right.headers["cache-control"] == "no-store"
    assert page.text_content("#user") == "alice"
    link = decode_qr(page.locator("#qr").screenshot())
    assert page.get_attribute("#open", "href") == link
    assert "UTC" in (page.text_content("#expires") or "")
    token = token_of(link)

    root = fetch_token(portal_server, token)
    accounts = root.findall("accounts/account")
    credentials = {a.findtext("username"): (a.findtext("password"),
                                            a.findtext("authentication_username"))
                   for a in accounts}
    assert credentials["1001"][0] == "Tea&Cakes<3"
    assert credentials["1002"] == ("Down-the-rabbit-hole", "alice.office")
    assert token not in portal_server.output()

    # The page obeys its own policy: no CSP report, the branded stylesheet applied.
    assert not [line for line in console if "Content Security Policy" in line], console
    accent = tuple(int(ACCENT[i:i + 2], 16) for i in (1, 3, 5))
    assert page.eval_on_selector("#new-code", "b => getComputedStyle(b).backgroundColor") \
        == "rgb({}, {}, {})".format(*accent)
    assert page.eval_on_selector("header img", "i => i.naturalWidth") > 0
    # Fits a phone: nothing wider than the screen, the code fully visible across.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#qr svg").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


def test_session_cookie_flags(phone: BrowserContext, portal_server: Server) -> None:
    page = phone.new_page()
    sign_in(page, portal_server)
    cookies = [c for c in phone.cookies() if c["name"] == COOKIE]
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/portal"
    # Script on the page could not read it even if there were any.
    assert COOKIE not in page.evaluate("document.cookie")
    assert cookie["value"] not in portal_server.output()


def test_sign_out_my_other_devices(browser: Browser, portal_server: Server) -> None:
    laptop = browser.new_context(**PHONE)
    try:
        page = laptop.new_page()
        sign_in(page, portal_server)
        old = token_of(page.get_attribute("#open", "href") or "")
        response = _submit(page, "#revoke")
        assert response.status == 200
        assert page.text_content("#message") == ("Done: 1 unused setup code was cancelled, "
                                                 "and your other sign-ins ended.")
        refused = fetch_token(portal_server, old)
        assert (refused.tag, refused.get("code")) == ("error", "1")
        # Still signed in: a new code works.
        _submit(page, "#new-code")
        new = token_of(page.get_attribute("#open", "href") or "")
        assert new != old
        assert fetch_token(portal_server, new).find("accounts/account") is not None
    finally:
        laptop.close()


def test_sign_out(phone: BrowserContext, portal_server: Server) -> None:
    page = phone.new_page()
    sign_in(page, portal_server)
    _submit(page, "#signout")
    assert page.url == f"{portal_server.base}/portal"
    assert page.locator("#password").count() == 1
    for cookie in phone.cookies():
        if cookie["name"] == COOKIE:
            data = json.loads(base64.b64decode(cookie["value"].split(".", 1)[0]))
            assert "user" not in data


def test_forms_without_the_csrf_token_are_refused(phone: BrowserContext,
                                                  portal_server: Server) -> None:
    page = phone.new_page()
    base = portal_server.base
    # The browser's own cookie, but no (or a wrong) CSRF token: refused, and nothing done.
    forms: tuple[dict[str, str | float | bool], ...] = ({}, {"csrf": "guessed"})
    for form in forms:
        for action in ("token", "revoke", "signout"):
            sign_in(page, portal_server)
            token = token_of(page.get_attribute("#open", "href") or "")
            reply = page.request.post(f"{base}/portal/{action}", form=form)
            assert reply.status == 403, (action, form)
            assert "did not come from this page" in reply.text()
            assert "<svg" not in reply.text()
            assert fetch_token(portal_server, token).find("accounts/account") is not None
    # Signing in needs it too (no login CSRF).
    reply = page.request.post(f"{base}/portal/signin",
                              form={"username": "alice", "password": ALICE_PASSWORD})
    assert reply.status == 403 and "Signed in as" not in reply.text()
    # Another site's page posting to the portal in the same browser, even with the right
    # CSRF token: SameSite=Strict keeps the session cookie away, so it is refused, and the
    # user stays signed in with their code untouched.
    sign_in(page, portal_server)
    token = token_of(page.get_attribute("#open", "href") or "")
    csrf = page.get_attribute("input[name=csrf]", "value")
    attacker = (f'<form method="post" action="{base}/portal/revoke">'
                f'<input name="csrf" value="{csrf}"><button id="go">go</button></form>')
    page.route("http://attacker.test/", lambda route: route.fulfill(
        body=attacker, content_type="text/html"))
    page.goto("http://attacker.test/")
    refused = _submit(page, "#go")
    assert refused.status == 403
    page.goto(f"{base}/portal")
    assert page.text_content("#user") == "alice"
    assert fetch_token(portal_server, token).find("accounts/account") is not None
