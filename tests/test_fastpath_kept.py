"""The fast path's kept parses and hits (zengine.fastpath): they hold a returning phone's
plaintext password (its parsed query, its Authorization header, its login attempt), so they
live no longer than their memo entry, and whatever is kept is served only when it is still
what the request would have got."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr
from starlette.testclient import TestClient

from tests.test_fastpath import HOME, ROAMING, Recorder, _app, _tenant_app
from zengine.doccache import Rendered
from zengine.fastpath import PARSES_PER_ENTRY, FastPath, Hit
from zengine.models import Credentials
from zengine.runtime import Runtime

URL = "/id.php?username=alice&password=wonderland&version=1.14"
QUERY = URL.split("?")[1].encode()


def _passwords(fast: FastPath) -> list[str]:
    """The plaintext passwords the kept parses hold."""
    return [p.request.credentials.password.get_secret_value() for p in fast._parses.values()
            if p.request.credentials is not None]


def _warm(client: TestClient, url: str = URL, address: str = HOME, times: int = 3) -> bytes:
    """A miss (the long path remembers), then hits: the parse is kept, then its hit."""
    answers = [client.get(url, headers={"X-Forwarded-For": address}) for _ in range(times)]
    assert all(a.status_code == 200 and b"<account>" in a.content for a in answers)
    return answers[-1].content


def test_an_expired_entry_found_by_its_kept_parse_takes_the_parse_with_it(
        tmp_path: Path) -> None:
    """Past its TTL the entry serves nothing, and its kept parse (the password) is dropped
    then, not whenever the entry is next replaced or evicted."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        fast = app.state.runtime.fast
        _warm(client)
        assert _passwords(fast) == ["wonderland"]
        ((_, parse),) = fast._parses.items()
        now = fast._clock()
        fast._clock = lambda: now + 10_000  # past every TTL
        assert fast.lookup(path="/id.php", query=QUERY, headers=parse.headers,
                           client_addr=parse.client_addr, kept=parse) is None
        assert fast._parses == {} and len(fast) == 0 and not parse.entry.alive


def test_an_expired_entry_is_dropped_only_if_it_is_still_the_one_found(tmp_path: Path) -> None:
    """A worker thread may have replaced the entry between the lookup and its expiry: the
    replacement stays."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        fast = app.state.runtime.fast
        _warm(client)
        (old,) = fast._items.values()
        fast.remember(Credentials(username="alice", password=SecretStr("wonderland")),
                      old.identity, list(old.generations))
        (new,) = fast._items.values()
        fast._expire("alice", old)
        assert fast._items == {"alice": new}


def test_a_user_who_never_returns_loses_her_parses_at_someone_elses_login(
        tmp_path: Path) -> None:
    """Expired entries at the memo's least recently remembered end are swept when another
    login is remembered or another parse kept: alice never comes back, her password goes."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        fast = app.state.runtime.fast
        _warm(client)
        now = fast._clock()
        fast._clock = lambda: now + 10_000
        bob = "/id.php?u=bob&p=builder&v=1.14"
        assert client.get(bob, headers={"X-Forwarded-For": HOME}).status_code == 200
        assert list(fast._items) == ["bob"] and fast._parses == {}
        # The other sweep: a parse kept (bob's first hit, below) sweeps the memo it hit.
        _warm(client, address=ROAMING)  # alice again: the long path, then her parse kept
        assert len(fast._parses) == 1 and set(fast._items) == {"alice", "bob"}
        later = now + 20_000
        fast._clock = lambda: later
        fast._items["bob"].expires = later + 100  # bob still fresh, alice not
        assert client.get(bob, headers={"X-Forwarded-For": HOME}).status_code == 200
        assert list(fast._items) == ["bob"] and _passwords(fast) == ["builder"]


def test_a_stopped_runtime_keeps_no_password(tmp_path: Path) -> None:
    """A reload stops the old runtime, which may stay referenced for a while: its memos
    (every tenant's) and their kept parses are emptied by Runtime.stop."""
    from tests import tenants_kit

    app = _tenant_app(tmp_path, True, Recorder())
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        for _ in range(3):
            answer = client.get("/id.php?u=alice&p=acme-pass-1&v=1.14",
                                headers={"Host": tenants_kit.HOSTS["acme"]})
            assert answer.status_code == 200
        assert _passwords(runtime.fast) == ["acme-pass-1"]
    assert runtime.fast._parses == {} and not runtime.fast.enabled
    assert all(len(t.fast) == 0 for t in runtime.tenants.values())


def test_clear_drops_every_parse(tmp_path: Path) -> None:
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        fast = app.state.runtime.fast
        _warm(client)
        (entry,) = fast._items.values()
        fast.clear()
        assert fast._parses == {} and entry.parses == [] and not entry.alive


def test_a_kept_parse_of_a_replaced_entry_is_checked_again(tmp_path: Path) -> None:
    """The event loop fetched a kept parse just before a worker thread replaced its entry
    (another password verified): the replacement dropped the parse, and the fetched one's
    password is checked against the new entry again, not taken for the new password."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        fast = app.state.runtime.fast
        _warm(client)
        (parse,) = fast._parses.values()
        (old,) = fast._items.values()
        fast.remember(Credentials(username="alice", password=SecretStr("new-one")),
                      old.identity, list(old.generations))
        assert fast._parses == {} and not old.alive
        assert fast.lookup(path="/id.php", query=QUERY, headers=parse.headers,
                           client_addr=parse.client_addr, kept=parse) is None


def test_no_more_request_shapes_are_kept_than_the_limit(tmp_path: Path) -> None:
    """At most PARSES_PER_ENTRY parses (passwords) per entry: one more address is parsed on
    every request, and still served."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        fast = app.state.runtime.fast
        first = _warm(client, times=1)
        addresses = [f"192.0.2.{20 + i}" for i in range(PARSES_PER_ENTRY + 1)]
        for address in addresses:
            assert _warm(client, address=address, times=2) == first
        (entry,) = fast._items.values()
        assert len(fast._parses) == len(entry.parses) == PARSES_PER_ENTRY
        assert {p.client_addr for p in fast._parses.values()} == set(addresses[:-1])


def test_a_document_replaced_under_the_same_key_is_served(tmp_path: Path) -> None:
    """A kept hit is the one before only while its document is the one in the cache."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        _warm(client, times=4)
        (parse,) = runtime.fast._parses.values()
        assert parse.hit is not None and parse.doc_key is not None
        runtime.documents.put(parse.doc_key[1], Rendered(b"<replaced/>", 2))
        answer = client.get(URL, headers={"X-Forwarded-For": HOME})
        assert answer.content == b"<replaced/>"


def test_a_hit_is_the_same_only_when_every_part_is_the_same_object() -> None:
    parts: list[Any] = [object() for _ in range(5)]
    hit = Hit(*parts)
    assert hit.same(*parts)
    for i in range(5):
        other = list(parts)
        other[i] = object()
        assert not hit.same(*other), i


def test_a_tenant_request_leaves_the_outer_context_as_it_was(tmp_path: Path) -> None:
    """handle binds the request's tenant for its lines and resets it afterwards, like its
    request_id, path and client_addr."""
    from tests import tenants_kit
    from zengine import pipeline
    from zengine.models import ProvisionRequest

    app = _tenant_app(tmp_path, False, Recorder())
    with TestClient(app):
        runtime: Runtime = app.state.runtime

        def request() -> ProvisionRequest:
            return ProvisionRequest(path="/id.php", params={},
                                    headers={"host": tenants_kit.HOSTS["acme"]},
                                    client_addr=HOME, credentials=None, version_raw=None)

        seen: list[dict[str, Any]] = []
        original = pipeline.provision

        def spying(request: ProvisionRequest, runtime: Runtime, outcome: pipeline.Outcome,
                   hit: Hit | None = None) -> bytes:
            seen.append(structlog.contextvars.get_contextvars())
            return original(request, runtime, outcome, hit)

        pipeline.provision = spying
        try:
            with structlog.contextvars.bound_contextvars(tenant="outer", path="/outer"):
                pipeline.handle(request, runtime, path="/id.php", client_addr=HOME)
                assert structlog.contextvars.get_contextvars() == {
                    "tenant": "outer", "path": "/outer"}
            pipeline.handle(request, runtime, path="/id.php", client_addr=HOME)
            assert structlog.contextvars.get_contextvars() == {}
        finally:
            pipeline.provision = original
        assert [s["tenant"] for s in seen] == ["acme", "acme"]
