"""Tokens in provisioning documents: the default token_url, issued tokens that the endpoint
redeems, static tokens kept (and validated), other servers' token URLs left alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from starlette.testclient import TestClient

import zengine_admin
import zengine_tokens
from tests.conftest import runtime_of
from tests.tokens import conftest
from tests.tokens.conftest import AuditSink, config_for, plugins
from zengine.app import create_app
from zengine.errors import ConfigError
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine_tokens.api import token_service

LOGIN = {"username": "alice", "password": "wonderland", "version": "1.14"}


@pytest.fixture
def client_for(tmp_path: Path, sink: AuditSink) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(tokens: dict[str, Any] | None = None, **top: Any) -> TestClient:
        settings = settings_from_mapping(config_for(tmp_path, tokens, **top), environ={},
                                         base_dir=tmp_path)
        client = TestClient(create_app(settings, load_entrypoints=False, plugins=plugins(sink)))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _accounts(body: bytes) -> dict[str, etree._Element]:
    root = etree.fromstring(body)
    return {a.findtext("ident") or "": a for a in root.iterfind("accounts/account")}


def test_by_default_app_starts_write_no_tokens_and_documents_stay_cacheable(
        client_for: Callable[..., TestClient], sink: AuditSink) -> None:
    # A returning phone fetches its document at every app start: issuing a token into each
    # would be a database write per start, a table growing with starts, and no warm-path
    # cache. The default sends this server's token_url and no token.
    client = client_for()
    runtime = runtime_of(client)
    for _ in range(3):
        office = _accounts(client.get("/id.php", params=LOGIN).content)["alice-office"]
        assert office.findtext("token_url") == "https://prov.example.com/token?id="
        assert office.find("token") is None
    assert token_service(runtime).list("alice") == []
    assert sink.named("token.issued") == []
    assert zengine_tokens.zengine_data_generation(runtime) is not None


def test_documents_get_this_servers_token_url_and_a_token_it_redeems(
        client_for: Callable[..., TestClient], sink: AuditSink) -> None:
    client = client_for({"issue_in_documents": True})
    accounts = _accounts(client.get("/id.php", params=LOGIN).content)
    office = accounts["alice-office"]
    tags = [child.tag for child in office]
    assert office.findtext("token_url") == "https://prov.example.com/token?id="
    assert tags.index("token") + 1 == tags.index("token_url")  # catalogue order
    token = office.findtext("token") or ""
    assert len(token) == 43 and accounts["alice-home"].findtext("token") != token
    # What Zoiper does with it: append the token to token_url and fetch.
    reply = client.get("/token?id=" + token)
    assert etree.fromstring(reply.content).findtext("accounts/account/password") == \
        "Tea&Cakes<3"
    issued = [e for e in sink.named("token.issued") if "actor=document" in (e.detail or "")]
    assert len(issued) == 2 and "purpose=document" in (issued[0].detail or "")


def test_a_new_document_revokes_the_last_document_token_not_a_link(
        client_for: Callable[..., TestClient]) -> None:
    client = client_for({"issue_in_documents": True})
    service = token_service(runtime_of(client))
    link = service.issue("alice", account="alice-office")
    first = _accounts(client.get("/id.php", params=LOGIN).content)["alice-office"]
    second = _accounts(client.get("/id.php", params=LOGIN).content)["alice-office"]
    assert b'<error code="1">' in client.get(f"/token?id={first.findtext('token')}").content
    assert b"<options>" in client.get(f"/token?id={second.findtext('token')}").content
    assert b"<options>" in client.get(f"/token?id={link.token}").content


def test_document_tokens_are_listed_and_revoked_with_the_users_other_tokens(
        client_for: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    # alice has a tenant in the users file; the CLI and the portal key tokens by tenant ""
    # (until tenants exist), so a document token under her tenant would be invisible to
    # `tokens list alice` and survive `tokens revoke --user alice` and the portal's sign-out.
    monkeypatch.setattr(conftest, "USERS", conftest.USERS.replace(
        "[users.alice]\n", '[users.alice]\ntenant = "wonderland"\n'))
    client = client_for({"issue_in_documents": True})
    service = token_service(runtime_of(client))
    office = _accounts(client.get("/id.php", params=LOGIN).content)["alice-office"]
    assert [i.purpose for i in service.list("alice")] == ["document", "document"]
    assert service.revoke_user("alice") == 2
    assert b'<error code="1">' in client.get(f"/token?id={office.findtext('token')}").content


def test_a_token_fetch_for_the_full_document_issues_no_new_token(
        client_for: Callable[..., TestClient], sink: AuditSink) -> None:
    client = client_for({"reply": "full", "issue_in_documents": True})
    service = token_service(runtime_of(client))
    issued = service.issue("bob")
    root = etree.fromstring(client.get(f"/token?id={issued.token}").content)
    assert root.findtext("accounts/account/token_url") == "https://prov.example.com/token?id="
    assert root.find("accounts/account/token") is None
    assert len(sink.named("token.issued")) == 1


def test_other_token_urls_static_tokens_and_issuing_off(
        client_for: Callable[..., TestClient], tmp_path: Path) -> None:
    other = client_for(profiles={"p": {"token_url": "https://else.example.net/t?id="}},
                       default_profile="p")
    office = _accounts(other.get("/id.php", params=LOGIN).content)["alice-office"]
    assert office.findtext("token_url") == "https://else.example.net/t?id="
    assert office.find("token") is None
    off = client_for()
    office = _accounts(off.get("/id.php", params=LOGIN).content)["alice-office"]
    assert office.findtext("token_url") == "https://prov.example.com/token?id="
    assert office.find("token") is None


def test_desktop_documents_get_no_token_fields(client_for: Callable[..., TestClient]) -> None:
    client = client_for({"issue_in_documents": True})
    body = client.get("/desktop", params={"username": "alice", "password": "wonderland"})
    assert b"token" not in body.content and b"<error" not in body.content


def test_static_token_is_kept_and_must_be_url_safe(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    users = Path(config["plugins"]["static"]["users_file"])
    text = users.read_text().replace('auth_username = "alice-auth"',
                                     'auth_username = "alice-auth"\ntoken = "t-alice-6789"')
    users.write_text(text)
    settings = settings_from_mapping(config, environ={}, base_dir=tmp_path)
    with TestClient(create_app(settings, load_entrypoints=False, plugins=plugins())) as client:
        office = _accounts(client.get("/id.php", params=LOGIN).content)["alice-office"]
        assert office.findtext("token") == "t-alice-6789"
    users.write_text(text.replace("t-alice-6789", "t alice/6789"))
    runtime = build_runtime(settings, load_entrypoints=False, plugins=plugins())
    with pytest.raises(ConfigError, match="A-Z a-z 0-9 - _"):
        runtime.start()
    runtime.stop()


def test_previews_show_a_placeholder_and_write_no_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``zengine render`` (and the admin/console preview, which call the same renderer) with
    ``issue_in_documents`` on: a preview must not write a token row nor print a live token."""
    from tests.tokens.conftest import runtime_from, write_config
    from zengine.cli import main
    from zengine.render import PREVIEW_PLACEHOLDER, render_document
    from zengine_admin import service
    from zengine_admin.service import Actor

    config = write_config(tmp_path, {"issue_in_documents": True})
    assert main(["render", "-c", str(config), "-u", "alice", "--version", "1.14"]) == 0
    accounts = _accounts(capsys.readouterr().out.encode())
    assert [a.findtext("token") for a in accounts.values()] == [PREVIEW_PLACEHOLDER] * 2
    runtime = runtime_from(config, ("admin", zengine_admin))
    try:
        assert token_service(runtime).list("alice") == []
        body = render_document(runtime, "alice", version="1.14")
        assert {a.findtext("token") for a in _accounts(body).values()} == {PREVIEW_PLACEHOLDER}
        actor = Actor(name="helpdesk", scope="read", tenant=None, client_addr="192.0.2.1")
        assert "<token>" in service.preview(runtime, actor, "alice", version="1.14").document
        assert token_service(runtime).list("alice") == []
    finally:
        runtime.stop()
