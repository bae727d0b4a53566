"""Endpoint paths that need a misbehaving backend: a use is given back when the answer
cannot be built, and a token whose user is gone is refused like any other."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tests.tokens.conftest import AuditSink, config_for, plugins
from zengine import hookimpl
from zengine.app import create_app
from zengine.errors import BackendUnavailable
from zengine.models import Identity
from zengine.settings import settings_from_mapping
from zengine_tokens.api import token_service


class Flaky:
    """An account source that is down while ``down`` is set."""

    down = False

    @hookimpl
    def zengine_load_accounts(self, identity: Identity) -> None:
        if self.down:
            raise BackendUnavailable("flaky: connection refused")


def _client(tmp_path: Path, sink: AuditSink, flaky: Flaky) -> TestClient:
    settings = settings_from_mapping(config_for(tmp_path), environ={}, base_dir=tmp_path)
    app = create_app(settings, load_entrypoints=False, plugins=plugins(sink, ("flaky", flaky)))
    return TestClient(app)


def test_a_use_is_given_back_when_a_backend_is_down(tmp_path: Path, sink: AuditSink) -> None:
    flaky = Flaky()
    with _client(tmp_path, sink, flaky) as client:
        service = token_service(client.app.state.runtime)  # type: ignore[attr-defined]
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
        service = token_service(client.app.state.runtime)  # type: ignore[attr-defined]
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
