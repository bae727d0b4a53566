"""Endpoint paths that need a misbehaving backend: a use is given back when the answer
cannot be built, and a token whose user is gone is refused like any other."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tests.conftest import runtime_of
from tests.tokens.conftest import AuditSink, config_for, plugins
from zengine import hookimpl
from zengine.app import create_app
from zengine.errors import BackendUnavailable, TooManyAttempts
from zengine.models import Identity, LoginAttempt, LoginResult
from zengine.settings import settings_from_mapping
from zengine_tokens.api import token_service


class Flaky:
    """An account source that is down while ``down`` is set."""

    down = False

    @hookimpl
    def zengine_load_accounts(self, identity: Identity) -> None:
        if self.down:
            raise BackendUnavailable("flaky: connection refused")


def _client(tmp_path: Path, sink: AuditSink, flaky: Flaky,
            *extra: tuple[str, object]) -> TestClient:
    settings = settings_from_mapping(config_for(tmp_path), environ={}, base_dir=tmp_path)
    app = create_app(settings, load_entrypoints=False,
                     plugins=plugins(sink, ("flaky", flaky), *extra))
    return TestClient(app)


def test_a_use_is_given_back_when_a_backend_is_down(tmp_path: Path, sink: AuditSink) -> None:
    flaky = Flaky()
    with _client(tmp_path, sink, flaky) as client:
        service = token_service(runtime_of(client))
        issued = service.issue("bob")
        flaky.down = True
        down = client.get(f"/token?id={issued.token}")
        assert down.status_code == 503 and b"temporarily unavailable" in down.content
        [info] = service.list("bob")
        assert info.uses == 0 and info.state == "active"
        assert [e.event for e in sink.events][-1] == "backend.unavailable"
        flaky.down = False
        assert b"<options>" in client.get(f"/token?id={issued.token}").content


def test_token_of_a_user_who_is_gone_is_refused(tmp_path: Path, sink: AuditSink) -> None:
    with _client(tmp_path, sink, Flaky()) as client:
        service = token_service(runtime_of(client))
        issued = service.issue("ghost", check_user=False)
        reply = client.get(f"/token?id={issued.token}")
        assert b'<error code="1">' in reply.content
        assert sink.named("token.refused")[-1].detail == f"reason=user unknown id={issued.id}"


def test_zengine_register_routes_mounts_the_configured_path(tmp_path: Path,
                                                            sink: AuditSink) -> None:
    settings = settings_from_mapping(config_for(tmp_path, {"path": "/t/fetch", "param": "k"}),
                                     environ={}, base_dir=tmp_path)
    app = create_app(settings, load_entrypoints=False, plugins=plugins(sink))
    with TestClient(app) as client:
        service = token_service(app.state.runtime)
        assert service.token_url == "https://prov.example.com/t/fetch?k="
        issued = service.issue("bob")
        assert client.get(f"/token?id={issued.token}").status_code == 404
        assert b"<options>" in client.get(f"/t/fetch?k={issued.token}").content
        # The plugin mount claims its own paths only: the core keeps its 405s and 404s.
        assert client.put("/id.php").status_code == 405
        assert client.put("/t/fetch").status_code == 405
        nowhere = client.get("/nowhere")
        assert nowhere.status_code == 404 and b"<error" in nowhere.content


class CountingGuard:
    """A guard on the core contract: three failed token fetches lock the address."""

    def __init__(self) -> None:
        self.attempts: list[LoginAttempt] = []
        self.failures: dict[str, int] = {}

    @hookimpl
    def zengine_login_check(self, attempt: LoginAttempt) -> None:
        self.attempts.append(attempt)
        if self.failures.get(attempt.username, 0) >= 3:
            raise TooManyAttempts("locked", retry_after=30,
                                  public_message="Too many attempts: wait 30 seconds.")

    @hookimpl
    def zengine_login_result(self, attempt: LoginAttempt, result: LoginResult) -> None:
        if not result.accepted:
            self.failures[attempt.username] = self.failures.get(attempt.username, 0) + 1


def test_zengine_login_check_limits_token_guessing(tmp_path: Path, sink: AuditSink) -> None:
    guard = CountingGuard()
    with _client(tmp_path, sink, Flaky(), ("guard", guard)) as client:
        service = token_service(runtime_of(client))
        issued = service.issue("bob")
        for n in range(3):
            assert b'<error code="1">' in client.get(f"/token?id=guess{n}").content
        locked = client.get(f"/token?id={issued.token}")
        assert locked.status_code == 429 and locked.headers["retry-after"] == "30"
        assert b"wait 30 seconds" in locked.content
        assert service.list("bob")[0].uses == 0  # the store was never asked
        assert sink.named("token.refused")[-1].detail == "reason=guard (locked)"
    attempt = guard.attempts[0]
    assert attempt.kind == "token" and attempt.username == attempt.client_addr == "testclient"
    assert attempt.secret.get_secret_value() == "guess0" and "guess0" not in repr(attempt)
