"""The admin API on a real server: key authentication (through the guard, in constant time),
scopes, tenant scoping, problem documents, and the users/tokens/lockouts resources."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.admin.conftest import AdminServer, Client, start

CAROL = {"username": "carol", "password": "pw-carol-1234", "display_name": "Carol",
         "accounts": [{"ident": "carol-1", "sip_username": "carol", "sip_password": "s1p-Car0l",
                       "domain": "sip.example.com"}]}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    yield from start(tmp_path_factory.mktemp("admin"))


def test_no_key_is_401_with_a_challenge(srv: AdminServer) -> None:
    reply = Client(srv.server).call("GET", "/api/v1/users")
    assert reply.status == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json()["status"] == 401


def test_every_bad_key_gets_the_same_answer_after_the_floor(srv: AdminServer) -> None:
    good = srv.keys["reader"]
    answers = []
    for bad in (good[:-1] + ("A" if good[-1] != "A" else "B"), "zk_ffffffffffff_" + good[16:],
                "garbage", "x" * 500):
        start_at = time.monotonic()
        reply = Client(srv.server).call("GET", "/api/v1/status", key=bad,
                                        headers={"X-Forwarded-For": "203.0.113.9"})
        elapsed = time.monotonic() - start_at
        # [auth] failure_floor_ms = 200 in this config: no refusal is answered sooner.
        assert elapsed >= 0.19
        answers.append((reply.status, reply.json()["detail"]))
    assert set(answers) == {(401, "invalid API key")}


def test_scopes(srv: AdminServer) -> None:
    reader = srv.client("reader")
    assert reader.call("GET", "/api/v1/users").status == 200
    refused = reader.call("POST", "/api/v1/users", {"username": "x"})
    assert refused.status == 403
    assert "scope 'write'" in refused.json()["detail"]
    assert reader.call("POST", "/api/v1/tokens", {"username": "alice"}).status == 403
    onboarding = srv.client("onboarding")
    assert onboarding.call("POST", "/api/v1/tokens", {"username": "alice"}).status == 201
    assert onboarding.call("DELETE", "/api/v1/users/alice").status == 403


def test_user_lifecycle_through_the_cli_write_path(srv: AdminServer) -> None:
    admin = srv.client()
    created = admin.call("POST", "/api/v1/users", CAROL)
    assert created.status == 201, created.body
    body = created.json()
    assert body["backend"] == "sql" and body["writable"] and body["has_password"]
    assert "s1p-Car0l" not in created.body.decode() and "pw-carol" not in created.body.decode()
    assert admin.call("POST", "/api/v1/users", CAROL).status == 409
    patched = admin.call("PATCH", "/api/v1/users/carol", {"enabled": False, "profile": "office"})
    assert patched.status == 200 and patched.json()["enabled"] is False
    bad_profile = admin.call("PATCH", "/api/v1/users/carol", {"profile": "nope"})
    assert bad_profile.status == 422
    assert bad_profile.json()["errors"][0]["field"] == "profile"
    assert admin.call("PUT", "/api/v1/users/carol/password",
                      {"password": "new-pass-5678"}).status == 204
    assert admin.call("DELETE", "/api/v1/users/carol").status == 204
    assert admin.call("GET", "/api/v1/users/carol").status == 404


def test_static_users_are_read_only(srv: AdminServer) -> None:
    admin = srv.client()
    assert admin.call("GET", "/api/v1/users/alice").json()["writable"] is False
    reply = admin.call("DELETE", "/api/v1/users/alice")
    assert reply.status == 409 and reply.json()["title"] == "Read-only backend"


def test_invalid_body_names_the_field(srv: AdminServer) -> None:
    admin = srv.client()
    reply = admin.call("POST", "/api/v1/users", {"username": "dave", "accounts": [
        {"ident": "d1", "sip_username": "dave", "domain": "x"}]})
    assert reply.status == 422
    assert reply.json()["errors"][0]["field"] == "accounts/0/sip_password"
    assert admin.call("POST", "/api/v1/users", raw=b"{not json",
                      headers={"Content-Type": "application/json"}).status == 400
    assert admin.call("POST", "/api/v1/users", raw=b"{}",
                      headers={"Content-Type": "text/plain"}).status == 415


def test_a_deeply_nested_body_is_a_400_not_a_500(srv: AdminServer) -> None:
    """json.loads raises RecursionError, not a JSONDecodeError, past Python's recursion limit:
    a body of nested arrays well under the size limit is still only a body that is not JSON."""
    admin = srv.client()
    for raw in (b"[" * 100_000, b'{"a":' * 50_000, b"[" * 100_000 + b"]" * 100_000):
        reply = admin.call("POST", "/api/v1/users", raw=raw,
                           headers={"Content-Type": "application/json"})
        assert reply.status == 400, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert "not JSON" in reply.json()["detail"]


def test_a_number_past_the_decoders_digit_limit_is_a_400_not_a_500(srv: AdminServer) -> None:
    """json.loads raises a plain ValueError (Python's 4300-digit limit on int conversion), not
    a JSONDecodeError, for an integer of 5000 digits: 5 KB is well under the size limit."""
    admin = srv.client()
    raw = b'{"username": "alice", "ttl_seconds": 1' + b"0" * 5000 + b"}"
    for path in ("/api/v1/tokens", "/api/v1/users"):
        reply = admin.call("POST", path, raw=raw, headers={"Content-Type": "application/json"})
        assert reply.status == 400, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert "not JSON" in reply.json()["detail"]


def test_an_audit_time_that_leaves_the_calendar_in_utc_is_a_422_not_a_500(
        srv: AdminServer) -> None:
    """9999-12-31T23:59:59-23:59 is a valid datetime but is past year 9999 in UTC (and
    0001-01-01T00:00:00+23:59 before year 1): converting it for the query overflowed."""
    admin = srv.client()
    for name, value in (("since", "9999-12-31T23:59:59-23:59"),
                        ("until", "0001-01-01T00:00:00%2B23:59")):
        reply = admin.call("GET", f"/api/v1/audit?{name}={value}")
        assert reply.status == 422, reply.body
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["errors"][0]["field"] == name
    edge = admin.call("GET", "/api/v1/audit?since=9999-12-31T23:59:59Z")
    assert edge.status == 200 and edge.json()["items"] == []


def test_a_body_value_of_the_wrong_json_type_is_refused_as_the_document_says(
        srv: AdminServer) -> None:
    """The OpenAPI document says ``uses`` is an integer and ``keep_older`` a boolean; the
    lax validation took "2" and "yes" (a token with 2 uses issued from a string)."""
    admin = srv.client()
    for body in ({"username": "alice", "uses": "2"}, {"username": "alice", "keep_older": "yes"},
                 {"username": "alice", "ttl_seconds": "3600"}):
        reply = admin.call("POST", "/api/v1/tokens", body)
        assert reply.status == 422, (body, reply.body)
        assert reply.json()["errors"][0]["field"] == next(iter(body.keys() - {"username"}))
    assert admin.call("POST", "/api/v1/tokens", {"username": "alice", "uses": 2,
                                                 "keep_older": True}).status == 201


def test_tenant_key_sees_only_its_tenant(srv: AdminServer) -> None:
    admin, acme = srv.client(), srv.client("acme")
    assert admin.call("POST", "/api/v1/users", {**CAROL, "username": "erin",
                                                "tenant": "other"}).status == 201
    made = acme.call("POST", "/api/v1/users", {**CAROL, "username": "frank"})
    assert made.status == 201 and made.json()["tenant"] == "acme"
    assert acme.call("GET", "/api/v1/users/erin").status == 404
    assert acme.call("DELETE", "/api/v1/users/erin").status == 404
    assert acme.call("POST", "/api/v1/tokens", {"username": "erin"}).status == 404
    names = [u["username"] for u in acme.call("GET", "/api/v1/users").json()["items"]]
    assert names == ["frank"]
    assert [t["name"] for t in acme.call("GET", "/api/v1/tenants").json()] == ["acme"]
    assert acme.call("POST", "/api/v1/users", {**CAROL, "username": "gina",
                                               "tenant": "other"}).status == 422


def test_token_issue_list_revoke(srv: AdminServer) -> None:
    onboarding = srv.client("onboarding")
    issued = onboarding.call("POST", "/api/v1/tokens", {"username": "bob"})
    assert issued.status == 201
    body = issued.json()
    assert body["link"].startswith("https://oem.zoiper.com/qr-howto.php?")
    assert body["token"] in body["link"] and body["qr_svg"].startswith("<svg")
    listed = onboarding.call("GET", "/api/v1/tokens?username=bob").json()["items"]
    assert listed[0]["id"] == body["id"]
    assert body["token"] not in str(listed)
    revoked = onboarding.call("DELETE", f"/api/v1/tokens/{body['id']}")
    assert revoked.status == 200 and revoked.json()["state"] == "revoked"
    assert onboarding.call("DELETE", f"/api/v1/tokens/{body['id']}").status == 409


def test_bad_keys_are_counted_by_the_guard_and_cleared(tmp_path: Path) -> None:
    for srv in start(tmp_path, guard={"lockout_threshold": 2},
                     server={"trusted_proxies": ["127.0.0.1/32"]}):
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        operator = {"X-Forwarded-For": "198.51.100.7"}
        for n in range(3):
            Client(srv.server).call("GET", "/api/v1/status", key=f"zk_{n:012x}_" + "A" * 43,
                                    headers=attacker)
        # The guessing address is locked: even a good key from it is refused...
        locked = srv.client("reader").call("GET", "/api/v1/status", headers=attacker)
        assert locked.status == 429 and "retry-after" in locked.headers
        output = srv.server.output()
        assert '"kind": "apikey"' in output and "203.0.113.9" in output
        # ...and nobody else is.
        admin = srv.client()
        entries = admin.call("GET", "/api/v1/lockouts", headers=operator).json()
        assert any(e["locked_for"] > 0 and "203.0.113.9" in e["name"] for e in entries)
        cleared = admin.call("DELETE", "/api/v1/lockouts?name=apikey:203.0.113.9",
                             headers=operator)
        assert cleared.status == 200 and cleared.json()["cleared"] >= 1
        assert srv.client("reader").call("GET", "/api/v1/status",
                                         headers=attacker).status == 200
        events = srv.server.output()
        assert "audit.admin.lockouts.cleared" in events and "198.51.100.7" in events


def test_audit_query_shows_admin_actions_with_who_and_where(srv: AdminServer) -> None:
    admin = srv.client()
    assert admin.call("POST", "/api/v1/users", {**CAROL, "username": "hank"}).status == 201
    assert admin.call("DELETE", "/api/v1/users/hank").status == 204
    deadline = time.monotonic() + 10
    while True:
        page = admin.call("GET", "/api/v1/audit?username=hank&event=admin.*").json()
        if len(page["items"]) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    events = [(e["event"], e["client_addr"]) for e in page["items"]]
    assert events[:2] == [("admin.user.deleted", "127.0.0.1"),
                          ("admin.user.created", "127.0.0.1")]
    assert "actor=admin" in page["items"][0]["detail"]
    one = admin.call("GET", "/api/v1/audit?username=hank&limit=1").json()
    assert len(one["items"]) == 1 and one["next_cursor"]
    older = admin.call("GET", f"/api/v1/audit?username=hank&limit=1&cursor={one['next_cursor']}")
    assert older.status == 200 and older.json()["items"][0]["id"] != one["items"][0]["id"]
    bad = admin.call("GET", "/api/v1/audit?cursor=nonsense")
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "cursor"
    future = admin.call("GET", "/api/v1/audit?username=hank&since=2999-01-01T00:00:00Z")
    assert future.json()["items"] == []


def test_a_tenants_token_never_redeems_another_tenants_user_of_the_same_name(
        srv: AdminServer) -> None:
    """acme is a tenant of the SQL own schema only (no ``[tenants.acme]`` runtime). Its key
    issued a token for its zed, redeemed on the global runtime by name: once an untenanted
    zed existed the token answered that other user's SIP password. The row now records the
    user's own tenant. (Last in the module: it leaves a zed in acme.)"""
    admin, acme = srv.client(), srv.client("acme")

    def zed(secret: str) -> dict[str, object]:
        return {"username": "zed", "accounts": [{"ident": "z1", "sip_username": "zed",
                                                 "sip_password": secret,
                                                 "domain": "sip.example.com"}]}

    assert acme.call("POST", "/api/v1/users", zed("AcmeZedSecret1")).status == 201
    issued = acme.call("POST", "/api/v1/tokens", {"username": "zed"})
    assert issued.status == 201, issued.body
    listed = acme.call("GET", "/api/v1/tokens?username=zed").json()["items"]
    assert [t["id"] for t in listed] == [issued.json()["id"]]
    # acme's key still manages its tokens.
    other = acme.call("POST", "/api/v1/tokens", {"username": "zed", "keep_older": True})
    revoked = acme.call("DELETE", f"/api/v1/tokens/{other.json()['id']}")
    assert revoked.status == 200 and revoked.json()["state"] == "revoked", revoked.body
    assert admin.call("POST", "/api/v1/users", zed("GlobalZedSecret2")).status == 201
    reply = Client(srv.server).call("GET", "/token?id=" + issued.json()["token"])
    assert reply.status == 200 and b"GlobalZedSecret2" not in reply.body, reply.body
