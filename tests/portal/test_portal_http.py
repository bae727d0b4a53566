"""The portal over HTTP in-process: sign-in through the auth chain, audit, forms, errors."""

from __future__ import annotations

import base64
import json
import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import zengine_guard
import zengine_portal
import zengine_tokens
from tests.conftest import EXAMPLE_CONFIG
from zengine import hookimpl
from zengine.app import create_app
from zengine.errors import BackendUnavailable, StoreUnavailable, TooManyAttempts
from zengine.models import AuditEvent, Credentials, LoginAttempt, LoginResult
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine.webforms import CSP
from zengine_portal.views import COOKIE

BUILTINS = ("zoiper", "static", "urls", "audit")
KEY = "http-test-session-key-0123456789abcdef"
ALICE_PASSWORD = "wonderland"


class AuditSink:
    """Records audit events, as a third-party audit plugin would."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @hookimpl
    def zengine_audit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def of(self, name: str) -> list[AuditEvent]:
        return [event for event in self.events if event.event == name]


class Outage:
    """An authentication backend whose server is down."""

    @hookimpl
    def zengine_authenticate(self, credentials: Credentials) -> None:
        if credentials.username == "carol":
            raise BackendUnavailable("outage: directory down")


def _app(tmp: Path, sink: AuditSink, *, portal: dict[str, Any] | None = None,
         extra: tuple[tuple[str, object], ...] = (), floor_ms: int = 0,
         public_url: str | None = "https://prov.example.com",
         server: dict[str, Any] | None = None, chain: bool = True,
         tables: dict[str, Any] | None = None) -> Any:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["server"].update(server or {})
    data["plugins"].update(tables or {})
    data["auth"]["failure_floor_ms"] = floor_ms
    # Cheap dummy verifications (the users file's own hashes keep their cost).
    data["passwords"] = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}
    if public_url:
        data["server"]["public_url"] = public_url
    data["plugins"]["tokens"] = {"sqlite_path": str(tmp / "tokens.db"),
                                 "provider_id": "zengine-test"}
    data["plugins"]["portal"] = {"enabled": True, "session_key": KEY, **(portal or {})}
    if extra and chain:
        data["auth"]["chain"] = [*data["auth"]["chain"], *(name for name, _ in extra)]
    settings = settings_from_mapping(data, base_dir=EXAMPLE_CONFIG.parent, environ={})
    return create_app(settings, load_entrypoints=False, plugins=[
        *plugin_list(*BUILTINS), ("tokens", zengine_tokens), ("portal", zengine_portal),
        ("sink", sink), *extra])


@pytest.fixture
def sink() -> AuditSink:
    return AuditSink()


@pytest.fixture
def client(tmp_path: Path, sink: AuditSink) -> Iterator[TestClient]:
    # https: the session cookie is Secure, so a client only sends it back over HTTPS.
    with TestClient(_app(tmp_path, sink), base_url="https://testserver") as test_client:
        yield test_client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def _sign_in(client: TestClient, username: str = "alice",
             password: str = ALICE_PASSWORD) -> Any:
    csrf = _csrf(client.get("/portal").text)
    return client.post("/portal/signin", data={"csrf": csrf, "username": username,
                                                "password": password})


def test_sign_in_issues_a_token_and_audits(client: TestClient, sink: AuditSink) -> None:
    response = _sign_in(client)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["cache-control"] == "no-store"
    assert "qr-howto.php?provider_id=zengine-test&amp;t=" in response.text
    assert "<svg" in response.text and "<script" not in response.text
    [signin] = sink.of("portal.signin")
    assert (signin.outcome, signin.username, signin.backend) == ("accepted", "alice", "static")
    [issued] = sink.of("token.issued")
    assert issued.username == "alice" and "actor=portal" in (issued.detail or "")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("httponly", "secure", "samesite=strict", "path=/portal", "Max-Age=900"):
        assert flag in cookie
    # Signed in: the start page offers the actions, without issuing anything.
    home = client.get("/portal")
    assert "Signed in as" in home.text and "<svg" not in home.text
    assert len(sink.of("token.issued")) == 1


def test_wrong_password_unknown_user_and_missing_fields(client: TestClient,
                                                        sink: AuditSink) -> None:
    wrong = _sign_in(client, password="nope")
    unknown = _sign_in(client, username="nobody", password="nope")
    assert wrong.status_code == unknown.status_code == 403
    assert "Wrong username or password." in wrong.text
    assert wrong.text.replace("alice", "nobody") == unknown.text.replace("alice", "nobody")
    empty = _sign_in(client, password="")
    assert empty.status_code == 400 and "No password given" in empty.text
    events = sink.of("portal.signin")
    assert [(e.outcome, e.username) for e in events] == [
        ("refused", "alice"), ("refused", "nobody"), ("refused", "alice")]
    assert events[0].detail == "rejected by static: wrong password"
    assert sink.of("token.issued") == []
    assert "nope" not in repr(sink.events)


def test_a_failed_sign_in_is_held_to_the_failure_floor(tmp_path: Path,
                                                       sink: AuditSink) -> None:
    with TestClient(_app(tmp_path, sink, floor_ms=600),
                    base_url="https://testserver") as client:
        csrf = _csrf(client.get("/portal").text)
        start = time.monotonic()
        response = client.post("/portal/signin", data={"csrf": csrf, "username": "nobody",
                                                       "password": "x"})
        assert response.status_code == 403
        assert time.monotonic() - start >= 0.6


def test_backend_outage_is_a_503_page(tmp_path: Path, sink: AuditSink) -> None:
    with TestClient(_app(tmp_path, sink, extra=(("outage", Outage()),)),
                    base_url="https://testserver") as client:
        response = _sign_in(client, username="carol", password="pw")
    assert response.status_code == 503
    assert "temporarily unavailable" in response.text
    assert [e.outcome for e in sink.of("portal.signin")] == ["unavailable"]


def test_user_without_accounts_gets_no_token(tmp_path: Path, sink: AuditSink) -> None:
    users = (EXAMPLE_CONFIG.parent / "users.example.toml").read_text(encoding="utf-8")
    hash_ = re.search(r'\[users\.alice\]\npassword_hash = "([^"]+)"', users)
    assert hash_ is not None
    (tmp_path / "users.toml").write_text(
        f'[users.dora]\npassword_hash = "{hash_.group(1)}"\n', encoding="utf-8")
    data_users = str(tmp_path / "users.toml")
    app = _app(tmp_path, sink)
    app.state.runtime.plugin_configs["static"] = type(
        app.state.runtime.plugin_configs["static"])(users_file=data_users)
    with TestClient(app, base_url="https://testserver") as client:
        response = _sign_in(client, username="dora")
    assert response.status_code == 403
    assert "No SIP account is set up" in response.text
    assert [e.outcome for e in sink.of("portal.signin")] == ["no_accounts"]
    assert sink.of("token.issued") == []


def test_no_link_without_public_url_or_provider(tmp_path: Path, sink: AuditSink) -> None:
    app = _app(tmp_path, sink, public_url=None)
    runtime = app.state.runtime
    runtime.plugin_configs["tokens"] = runtime.plugin_configs["tokens"].model_copy(
        update={"provider_id": None})
    with TestClient(app, base_url="https://testserver") as client:
        response = _sign_in(client)
    assert response.status_code == 503
    assert "<svg" not in response.text


@pytest.mark.parametrize(("headers", "body"), [
    ({"content-type": "application/json"}, b'{"csrf": "x"}'),
    ({"content-type": "application/x-www-form-urlencoded"}, b"csrf=a&csrf=b"),
    ({"content-type": "application/x-www-form-urlencoded"}, b"username=%ff%fe"),
    ({"content-type": "application/x-www-form-urlencoded"}, b"u=" + b"x" * 9000),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x--"),
])
def test_malformed_forms_are_bad_requests(client: TestClient, headers: dict[str, str],
                                          body: bytes) -> None:
    client.get("/portal")
    for action in ("signin", "token", "revoke", "signout"):
        response = client.post(f"/portal/{action}", content=body, headers=headers)
        assert response.status_code == 400, action
        assert "could not be read" in response.text
        assert response.headers["content-security-policy"] == CSP


def test_oversized_credentials_are_bad_requests(client: TestClient) -> None:
    csrf = _csrf(client.get("/portal").text)
    response = client.post("/portal/signin", data={"csrf": csrf, "username": "a" * 300,
                                                   "password": "x"})
    assert response.status_code == 400


@pytest.mark.parametrize("action", ["signin", "token", "revoke", "signout"])
def test_get_on_a_form_target_goes_back_to_the_start(client: TestClient, action: str) -> None:
    response = client.get(f"/portal/{action}?password=wonderland", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/portal"


def test_a_tampered_session_is_no_session(client: TestClient) -> None:
    _sign_in(client)
    # Another user's name under alice's signature.
    signature = client.cookies[COOKIE].partition(".")[2]
    client.cookies.clear()
    forged = base64.b64encode(json.dumps({"user": "bob", "csrf": "x"}).encode()).decode()
    client.cookies.set(COOKIE, f"{forged}.{signature}", domain="testserver", path="/portal")
    page = client.get("/portal")
    assert "Sign in" in page.text and "Signed in as" not in page.text
    refused = client.post("/portal/token", data={"csrf": "x"})
    assert refused.status_code == 403


def test_static_files(client: TestClient) -> None:
    css = client.get("/portal/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    theme = client.get("/portal/static/theme.css")
    assert "--accent: #0b5cad;" in theme.text
    assert client.get("/portal/static/logo").status_code == 404
    assert client.get("/portal/static/..%2fviews.py").status_code == 404


def test_logo_is_served_under_a_deny_all_policy(tmp_path: Path, sink: AuditSink) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
                     b"</svg>")
    with TestClient(_app(tmp_path, sink, portal={"logo": str(logo)}),
                    base_url="https://testserver") as client:
        page = client.get("/portal")
        served = client.get("/portal/static/logo")
    assert '<img class="logo" src="/portal/static/logo" alt="">' in page.text
    assert served.headers["content-type"] == "image/svg+xml"
    # Opened on its own, the SVG could not run its script.
    assert served.headers["content-security-policy"].startswith("default-src 'none'")


def test_title_is_escaped(tmp_path: Path, sink: AuditSink) -> None:
    with TestClient(_app(tmp_path, sink, portal={"title": "A&B <i>Telecom</i>"}),
                    base_url="https://testserver") as client:
        page = client.get("/portal").text
    assert "A&amp;B &lt;i&gt;Telecom&lt;/i&gt;" in page and "<i>" not in page


def test_signed_out_user_cannot_issue_or_revoke(client: TestClient, sink: AuditSink) -> None:
    csrf = _csrf(client.get("/portal").text)
    for action in ("token", "revoke"):
        response = client.post(f"/portal/{action}", data={"csrf": csrf})
        assert response.status_code == 403
    assert sink.of("token.issued") == [] and sink.of("token.revoked") == []


class Guard:
    """A login guard, as issue 9's plugin is one: sees every attempt, refuses "mallory"."""

    def __init__(self) -> None:
        self.attempts: list[LoginAttempt] = []
        self.results: list[tuple[LoginAttempt, LoginResult]] = []

    @hookimpl
    def zengine_login_check(self, attempt: LoginAttempt) -> None:
        self.attempts.append(attempt)
        if attempt.username == "mallory":
            raise TooManyAttempts("locked out", retry_after=42,
                                  public_message="Too many attempts: wait a minute.")

    @hookimpl
    def zengine_login_result(self, attempt: LoginAttempt, result: LoginResult) -> None:
        self.results.append((attempt, result))


def test_portal_signin_goes_through_zengine_login_check_like_a_phone(
        tmp_path: Path, sink: AuditSink) -> None:
    guard = Guard()
    app = _app(tmp_path, sink, extra=(("guard", guard),), chain=False,
               server={"trusted_proxies": ["10.0.0.1"]})
    with TestClient(app, base_url="https://testserver", client=("10.0.0.1", 4000)) as client:
        forwarded = {"X-Forwarded-For": "203.0.113.9"}
        csrf = _csrf(client.get("/portal").text)
        locked = client.post("/portal/signin", headers=forwarded, data={
            "csrf": csrf, "username": "mallory", "password": "pw"})
        ok = client.post("/portal/signin", headers=forwarded, data={
            "csrf": csrf, "username": "alice", "password": ALICE_PASSWORD})
        phone = client.get("/id.php", headers=forwarded, params={
            "u": "alice", "p": ALICE_PASSWORD, "v": "1.14"})
    assert locked.status_code == 429 and locked.headers["retry-after"] == "42"
    assert "Too many attempts: wait a minute." in locked.text
    assert ok.status_code == 200 and phone.status_code == 200
    portal, provisioning = guard.attempts[1], guard.attempts[2]
    # The same attempt a phone's login makes: same kind, the real (forwarded) address.
    assert (portal.username, portal.kind, portal.client_addr, portal.path) == (
        "alice", "password", "203.0.113.9", "/portal/signin")
    assert (provisioning.kind, provisioning.client_addr) == (portal.kind, portal.client_addr)
    assert [(a.username, r.accepted, r.backend) for a, r in guard.results] == [
        ("alice", True, "static"), ("alice", True, "static")]
    events = sink.of("portal.signin")
    assert [(e.outcome, e.client_addr) for e in events] == [
        ("too_many_attempts", "203.0.113.9"), ("accepted", "203.0.113.9")]
    # The portal's token carries the real address (the phone's document gets a token too).
    portal_tokens = [e for e in sink.of("token.issued") if "actor=portal" in (e.detail or "")]
    assert [e.client_addr for e in portal_tokens] == ["203.0.113.9"]


def test_sign_out_ends_a_copied_session_too(client: TestClient) -> None:
    csrf = _csrf(_sign_in(client).text)
    copied = client.cookies[COOKIE]
    assert client.post("/portal/signout", data={"csrf": csrf},
                       follow_redirects=False).status_code == 303
    client.cookies.set(COOKIE, copied, domain="testserver", path="/portal")
    assert "Signed in as" not in client.get("/portal").text
    client.cookies.set(COOKIE, copied, domain="testserver", path="/portal")
    assert client.post("/portal/token", data={"csrf": csrf}).status_code == 403


def test_sign_out_my_other_devices_ends_their_sessions(tmp_path: Path,
                                                       sink: AuditSink) -> None:
    app = _app(tmp_path, sink)
    with TestClient(app, base_url="https://testserver") as laptop, \
            TestClient(app, base_url="https://testserver") as tablet:
        laptop_csrf = _csrf(_sign_in(laptop).text)
        tablet_csrf = _csrf(_sign_in(tablet).text)
        revoked = laptop.post("/portal/revoke", data={"csrf": laptop_csrf})
        assert ("Done: 1 unused setup code was cancelled, and your other sign-ins ended."
                in revoked.text)
        # The tablet's session is over; the laptop's carries on.
        assert tablet.post("/portal/token", data={"csrf": tablet_csrf}).status_code == 403
        assert "Signed in as" not in tablet.get("/portal").text
        assert laptop.post("/portal/token", data={"csrf": laptop_csrf}).status_code == 200


class DeadStore:
    """A shared store whose server is down."""

    kind = "dead"

    def get(self, key: str) -> bytes | None:
        raise StoreUnavailable("down")

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        raise StoreUnavailable("down")

    def incr(self, key: str, ttl: float) -> int:
        raise StoreUnavailable("down")

    def delete(self, key: str) -> int:
        raise StoreUnavailable("down")

    def keys(self, prefix: str) -> list[str]:
        raise StoreUnavailable("down")

    def close(self) -> None:
        pass


class DeadStorePlugin:
    @hookimpl
    def zengine_shared_store(self) -> DeadStore:
        return DeadStore()


def test_a_session_fails_closed_when_the_shared_store_is_down(tmp_path: Path,
                                                              sink: AuditSink) -> None:
    app = _app(tmp_path, sink, extra=(("deadstore", DeadStorePlugin()),), chain=False)
    with TestClient(app, base_url="https://testserver") as client:
        signed_in = _sign_in(client)
        assert signed_in.status_code == 200  # the sign-in itself shows the code
        again = client.post("/portal/token", data={"csrf": _csrf(signed_in.text)})
    assert again.status_code == 403
    assert len(sink.of("token.issued")) == 1


def test_control_characters_are_refused_before_any_backend(client: TestClient,
                                                           sink: AuditSink) -> None:
    response = _sign_in(client, username="al\x00ice")
    assert response.status_code == 400
    assert "contains a character that is not allowed" in response.text
    assert "\x00" not in response.text
    assert [e.outcome for e in sink.of("portal.signin")] == ["bad_request"]


def test_portal_and_phone_logins_share_the_guards_lockout(tmp_path: Path,
                                                          sink: AuditSink) -> None:
    """With the real guard plugin: wrong passwords typed into the portal lock the account for
    the phone too, and the portal refuses a locked account like the phone does."""
    app = _app(tmp_path, sink, extra=(("guard", zengine_guard),), chain=False,
               tables={"guard": {"lockout_threshold": 2, "familiar_days": 0}})
    with TestClient(app, base_url="https://testserver", client=("198.51.100.7", 4000)) as client:
        for password in ("guess-1", "guess-2"):
            assert _sign_in(client, password=password).status_code == 403
        locked = _sign_in(client)
        phone = client.get("/id.php", params={"u": "alice", "p": ALICE_PASSWORD, "v": "1.14"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "<svg" not in locked.text
    assert phone.status_code == 429 and b"<error" in phone.content
    assert [e.outcome for e in sink.of("portal.signin")] == [
        "refused", "refused", "too_many_attempts"]
    assert sink.of("token.issued") == []
