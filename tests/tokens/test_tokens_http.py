"""The token endpoint over real HTTP, on the real server as a subprocess sharing its store
file with a runtime in the test that issues the tokens."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from lxml import etree

import zengine_guard
from tests.serverproc import Server, running_server
from tests.tokens.conftest import runtime_from, write_config
from zengine.runtime import Runtime
from zengine_tokens.api import TokenService, token_service

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, TokenService]]:
    directory = tmp_path_factory.mktemp("tokens-http")
    config = write_config(directory)
    runtime = runtime_from(config)
    try:
        with running_server(config, directory) as server:
            yield server, token_service(runtime)
    finally:
        runtime.stop()


@pytest.fixture
def server(served: tuple[Server, TokenService]) -> Server:
    return served[0]


@pytest.fixture
def service(served: tuple[Server, TokenService]) -> TokenService:
    return served[1]


def fetch(server: Server, token: str, *, source: str = "127.0.0.1",
          method: str = "GET") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.request(method, f"http://127.0.0.1:{server.port}/token?id={token}")


def accounts(body: bytes) -> list[dict[str, str]]:
    root = etree.fromstring(body)
    assert root.tag == "options" and [c.tag for c in root] == ["accounts"]
    return [{child.tag: child.text or "" for child in account} for account in root[0]]


def audit_lines(server: Server, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == f"audit.{event}"]


def test_valid_token_gets_the_sip_credentials_once(server: Server,
                                                   service: TokenService) -> None:
    issued = service.issue("alice", account="alice-office")
    reply = fetch(server, issued.token)
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["content-type"].startswith("application/xml")
    assert reply.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert accounts(reply.content) == [{"username": "alice", "password": "Tea&Cakes<3",
                                        "authentication_username": "alice-auth"}]
    assert b"Tea&amp;Cakes&lt;3" in reply.content  # escaped once, by lxml
    [info] = [i for i in service.list("alice") if i.id == issued.id]
    assert info.state == "used" and info.last_used_addr == "127.0.0.1"
    used = [line for line in audit_lines(server, "token.used")
            if f"id={issued.id}" in str(line["detail"])]
    assert len(used) == 1 and "replay=false" in str(used[0]["detail"])


def test_token_for_all_accounts(server: Server, service: TokenService) -> None:
    issued = service.issue("alice")
    got = accounts(fetch(server, issued.token).content)
    assert [a["username"] for a in got] == ["alice", "alice2"]
    assert got[1]["authentication_username"] == "alice2"


def test_replay_window_same_answer_same_address_only(server: Server,
                                                     service: TokenService) -> None:
    issued = service.issue("bob")
    first = fetch(server, issued.token)
    again = fetch(server, issued.token)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    elsewhere = fetch(server, issued.token, source="127.0.0.2")
    assert b'<error code="1">' in elsewhere.content
    [info] = [i for i in service.list("bob") if i.id == issued.id]
    assert info.uses == 1
    replayed = [line for line in audit_lines(server, "token.used")
                if f"id={issued.id}" in str(line["detail"])]
    assert [line["outcome"] for line in replayed] == ["used", "replayed"]


def test_unknown_expired_used_revoked_get_one_answer(server: Server,
                                                     service: TokenService) -> None:
    used = service.issue("alice", account="alice-home", revoke_older=False)
    assert fetch(server, used.token).status_code == 200
    revoked = service.issue("alice", account="alice-home", revoke_older=False)
    service.revoke(revoked.id)
    real_clock = service.clock
    service.clock = lambda: real_clock() - timedelta(hours=80)
    try:
        expired = service.issue("alice", account="alice-home", revoke_older=False)
    finally:
        service.clock = real_clock
    cases = {"unknown": "A" * 43, "malformed": "bad%2Ftoken", "expired": expired.token,
             "revoked": revoked.token, "used": used.token}
    replies = {name: fetch(server, token, source="127.0.0.3") for name, token in cases.items()}
    bodies = {r.content for r in replies.values()}
    statuses = {r.status_code for r in replies.values()}
    assert len(bodies) == 1 and statuses == {200}
    assert b'<error code="1">' in bodies.pop()
    assert all(r.headers["cache-control"] == "no-store" for r in replies.values())
    reasons = [str(line["detail"]).split()[0] for line in audit_lines(server, "token.refused")
               if line.get("client_addr") == "127.0.0.3"]
    assert reasons == ["reason=unknown", "reason=malformed", "reason=expired",
                       "reason=revoked", "reason=used"]


def test_head_never_consumes_and_bad_queries_are_400(server: Server,
                                                    service: TokenService) -> None:
    issued = service.issue("bob", account="bob-1")
    head = fetch(server, issued.token, method="HEAD")
    assert head.status_code == 405 and head.headers["allow"] == "GET, POST"
    with httpx.Client(timeout=10) as client:
        missing = client.get(f"{server.base}/token")
        twice = client.get(f"{server.base}/token?id=a&id=b")
    assert missing.status_code == twice.status_code == 400
    assert b"<error" in missing.content
    assert fetch(server, issued.token).status_code == 200


def test_tokens_never_reach_the_server_output(server: Server, service: TokenService) -> None:
    issued = service.issue("alice", account="alice-office")
    fetch(server, issued.token)
    fetch(server, issued.token, source="127.0.0.4")
    output = server.output()
    assert "GET /token" in output  # the access log is there
    assert issued.token not in output
    assert "Tea&Cakes" not in output


def test_twenty_concurrent_fetches_over_http(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"replay_window": 0})
    runtime: Runtime = runtime_from(config)
    try:
        issued = token_service(runtime).issue("alice", account="alice-office")
        with running_server(config, tmp_path) as server:
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(lambda _: fetch(server, issued.token), range(20)))
    finally:
        runtime.stop()
    ok = [r for r in replies if b"<options>" in r.content]
    refused = [r for r in replies if b'<error code="1">' in r.content]
    assert len(ok) == 1 and len(refused) == 19


def test_full_reply_is_the_accounts_document(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"reply": "full"})
    runtime = runtime_from(config)
    try:
        issued = token_service(runtime).issue("alice", account="alice-office")
        with running_server(config, tmp_path) as server:
            reply = fetch(server, issued.token)
    finally:
        runtime.stop()
    root = etree.fromstring(reply.content)
    assert root.tag == "options" and root.find("accounts/account/SIP_domain") is not None
    assert root.findtext("accounts/account/password") == "Tea&Cakes<3"
    assert [a.findtext("ident") for a in root.iterfind("accounts/account")] == ["alice-office"]


def test_an_address_guessing_tokens_is_locked_out_by_the_guard(tmp_path: Path) -> None:
    config = write_config(tmp_path, guard={"lockout_threshold": 3, "lockout_base": 120})
    runtime = runtime_from(config, ("guard", zengine_guard))
    try:
        service = token_service(runtime)
        mine = service.issue("alice", account="alice-office")
        theirs = service.issue("bob")
        with running_server(config, tmp_path) as server:
            guesses = [fetch(server, f"guess-{n:040d}", source="127.0.0.5") for n in range(3)]
            assert all(b'<error code="1">' in r.content for r in guesses)
            locked = fetch(server, theirs.token, source="127.0.0.5")
            # Locked out before the store is asked, even with a valid token.
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 60
            assert b"<error" in locked.content
            assert service.list("bob")[0].uses == 0
            # Another address is not affected.
            assert b"<options>" in fetch(server, mine.token, source="127.0.0.6").content
            assert b"<options>" in fetch(server, theirs.token, source="127.0.0.7").content
            output = server.output()
    finally:
        runtime.stop()
    assert "security.login_refused" in output and '"kind": "token"' in output
    assert mine.token not in output and theirs.token not in output
    assert "guess-0000" not in output
