"""The console over real HTTP against the real server: sign-in with an API key, the session
rules (CSRF, cookie flags, nothing secret in the cookie, the log or a redirect), finding a
user, their document, their recent logins and why they failed, lockouts, tokens, scopes."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest

from tests.admin.conftest import runtime_from
from tests.console.conftest import ALICE_PASSWORD, COOKIE, ConsoleServer, csrf_of, start
from zengine.webforms import CSP

pytestmark = pytest.mark.subprocess


def test_sign_in_page_and_refusals(console: ConsoleServer) -> None:
    browser = console.browser()
    page = browser.get("/console")
    assert page.status_code == 200 and 'name="api_key"' in page.text
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-store"
    assert "username" not in page.text  # no LDAP admin group configured: keys only
    started = time.monotonic()
    wrong = browser.post("/console/signin", {"csrf": csrf_of(page.text),
                                             "api_key": "zk_wrong-key-0123456789"})
    assert wrong.status_code == 403 and "Wrong API key." in wrong.text
    assert time.monotonic() - started >= 0.2  # held to [auth] failure_floor_ms
    assert "user" not in browser.session()
    # A form without the session's CSRF token is refused, whatever it carries.
    forged = console.browser().post("/console/signin", {"csrf": "x",
                                                        "api_key": console.keys["admin"]})
    assert forged.status_code == 403 and "expired" in forged.text


def test_a_locked_out_sign_in_says_when_to_try_again(tmp_path: Path) -> None:
    """The guard's 429 at the console's sign-in carries its ``Retry-After``, as the portal's
    and the API's do (the console's page dropped it)."""
    # Its own server: this locks 127.0.0.1 out of it.
    with contextlib.contextmanager(start)(tmp_path) as console:
        browser = console.browser()
        answers = [browser.sign_in(f"zk_wrong-key-{n:022d}") for n in range(4)]
        assert [a.status_code for a in answers] == [403, 403, 403, 429], answers
        assert "retry-after" not in answers[0].headers
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert "zk_wrong-key" not in answers[-1].text


def test_signed_in_session_rules(console: ConsoleServer) -> None:
    browser = console.browser()
    signed = browser.sign_in(console.keys["admin"])
    assert signed.status_code == 303 and signed.headers["location"] == "/console"
    cookie = next(h for h in browser.seen if h.startswith(COOKIE) and "user" not in h)
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower() and "path=/console" in cookie.lower()
    session = browser.session()
    assert session["user"] == "helpdesk" and session["via"] == "apikey"
    assert console.keys["admin"] not in repr(session)
    home = browser.get("/console")
    assert 'id="q"' in home.text and "helpdesk" in home.text
    # Sign out ends the session server-side: the old cookie is dead too.
    old = browser.cookie
    browser.post("/console/signout", {"csrf": csrf_of(home.text)})
    browser.cookie = old
    assert 'name="api_key"' in browser.get("/console").text


def test_find_a_user_and_see_accounts_document_and_why_logins_failed(
        console: ConsoleServer) -> None:
    assert console.login("alice", "not-her-password").status_code == 200  # Zoiper's <error>
    assert b"<account>" in console.login("alice", ALICE_PASSWORD).content
    browser = console.browser()
    browser.sign_in(console.keys["reader"])
    found = browser.get("/console/users", q="ali")
    assert found.status_code == 200
    assert '/console/user?name=alice' in found.text and "bob" not in found.text
    assert "No user matches" in browser.get("/console/users", q="nobody-here").text
    page = browser.get("/console/user", name="alice")
    assert page.status_code == 200
    assert "alice-office" in page.text and "alice-home" in page.text
    assert "&lt;account&gt;" in page.text  # the document, escaped as text
    assert "Tea&amp;Cakes" not in page.text and "Down-the-rabbit-hole" not in page.text
    recent = page.text[page.text.index('id="recent"'):page.text.index('id="tokens"')]
    assert "login.refused" in recent and "rejected" in recent
    assert "login.accepted" in recent and "127.0.0.1" in recent
    assert re.search(r"rejected by static", recent), recent
    missing = browser.get("/console/user", name="nobody-here")
    assert missing.status_code == 404 and "nobody-here" in missing.text


def test_clear_a_lockout_and_scopes(console: ConsoleServer) -> None:
    for n in range(4):
        console.login("bob", f"guess-{n}")
    assert b"<account>" not in console.login("bob", ALICE_PASSWORD).content  # locked
    reader = console.browser()
    reader.sign_in(console.keys["reader"])
    page = reader.get("/console/user", name="bob")
    assert 'class="clear-lockout"' in page.text
    refused = reader.post("/console/lockouts/clear", {"csrf": csrf_of(page.text),
                                                      "name": "bob", "user": "bob"})
    assert refused.status_code == 403 and "scope" in refused.text
    admin = console.browser()
    admin.sign_in(console.keys["admin"])
    page = admin.get("/console/user", name="bob")
    no_csrf = admin.post("/console/lockouts/clear", {"csrf": "nope", "name": "bob"})
    assert no_csrf.status_code == 403
    admin.sign_in(console.keys["admin"])
    page = admin.get("/console/user", name="bob")
    cleared = admin.post("/console/lockouts/clear", {"csrf": csrf_of(page.text),
                                                     "name": "bob", "user": "bob"})
    assert cleared.status_code == 200 and "Lockout cleared" in cleared.text
    assert 'id="no-lockouts"' in cleared.text
    assert "admin.lockouts.cleared" in cleared.text  # the audit trail, on the same page
    assert b"<account>" in console.login("bob", ALICE_PASSWORD).content


def test_issue_show_and_revoke_a_token(console: ConsoleServer) -> None:
    admin = console.browser()
    admin.sign_in(console.keys["admin"])
    page = admin.get("/console/user", name="alice")
    issued = admin.post("/console/tokens/issue", {"csrf": csrf_of(page.text), "user": "alice"})
    assert issued.status_code == 200 and "<svg" in issued.text
    link = re.search(r'id="token-link">([^<]+)<', issued.text)
    assert link is not None
    token = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)["t"][0]
    token_id = re.search(r'name="id" value="([0-9a-f]+)"', issued.text)
    assert token_id is not None
    fetched = httpx.get(f"{console.server.base}/token", params={"id": token})
    assert b"Tea&amp;Cakes&lt;3" in fetched.content
    # Shown once: the page after it carries the token no more.
    assert token not in admin.get("/console/user", name="alice").text
    second = admin.post("/console/tokens/issue", {"csrf": csrf_of(page.text), "user": "alice"})
    new_id = re.search(r'name="id" value="([0-9a-f]+)"', second.text)
    assert new_id is not None
    revoked = admin.post("/console/tokens/revoke", {"csrf": csrf_of(page.text),
                                                    "id": new_id.group(1)})
    assert revoked.status_code == 200 and f"Token {new_id.group(1)} revoked." in revoked.text


def test_a_revoked_key_ends_its_sessions(console: ConsoleServer) -> None:
    from zengine_admin.keys import key_store

    runtime = runtime_from(console.config)
    try:
        temp = key_store(runtime).create("temp-desk", "read").key
    finally:
        runtime.stop()
    browser = console.browser()
    browser.sign_in(temp)
    assert 'id="q"' in browser.get("/console").text
    runtime = runtime_from(console.config)
    try:
        assert key_store(runtime).revoke("temp-desk") is not None
    finally:
        runtime.stop()
    assert 'name="api_key"' in browser.get("/console").text
    assert browser.get("/console/users", q="ali").status_code == 303


def test_no_key_or_cookie_in_the_log(console: ConsoleServer) -> None:
    browser = console.browser()
    browser.sign_in(console.keys["admin"])
    browser.get("/console/users", q="alice")
    time.sleep(0.2)
    output = console.server.output()
    assert "console" in output  # the access log saw the console's requests
    for secret in [*console.keys.values(), str(browser.cookie), ALICE_PASSWORD]:
        assert secret not in output
    # Nor in the audit store's rows (the console's admin.* events among them).
    with contextlib.closing(sqlite3.connect(console.config.parent / "audit.db")) as conn:
        rows = conn.execute("SELECT * FROM zengine_audit_events").fetchall()
    assert any("via=console" in str(row) for row in rows), rows
    for secret in [*console.keys.values(), str(browser.cookie), ALICE_PASSWORD]:
        assert secret not in repr(rows)


def test_login_history_pages_back_with_a_stable_cursor(console: ConsoleServer) -> None:
    for _ in range(12):  # 24 events (login.accepted, document.served): more than a page
        assert b"<account>" in console.login("alice", ALICE_PASSWORD).content
    browser = console.browser()
    browser.sign_in(console.keys["reader"])

    def event_ids(html: str) -> list[int]:
        return [int(i) for i in re.findall(r'<tr id="event-(\d+)"', html)]

    first = browser.get("/console/user", name="alice")
    page1 = event_ids(first.text)
    assert len(page1) == 20 and page1 == sorted(page1, reverse=True)
    older = re.search(r'id="older" href="([^"]+)"', first.text)
    assert older is not None
    # Newer events arriving between pages do not shift the next one.
    assert b"<account>" in console.login("alice", ALICE_PASSWORD).content
    page2 = event_ids(browser.get(older.group(1).replace("&amp;", "&")).text)
    assert page2 and max(page2) < min(page1)
    assert page2 == sorted(page2, reverse=True)
    refused = browser.get("/console/user", name="alice", before="not-a-cursor")
    assert refused.status_code == 200 and "does not exist" in refused.text
