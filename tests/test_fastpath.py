"""The fast path (zengine.fastpath) answers exactly what the long path answers.

One sequence of varied requests — every family and version, wrong passwords, lockouts, a
disabled user, deny-listed addresses, bad input, Basic credentials — goes through an app with
the fast path and through the same app with ``[server] fast_path = false``. Status, every
header, the body bytes, the log lines (request id, time and duration aside) and the audit
events must be the same, request by request; and the fast app must really have used the fast
path for the returning logins.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from tests.conftest import BUILTINS, EXAMPLE_CONFIG
from tests.guard.conftest import REDIS_URL, redis_client
from zengine import hookimpl
from zengine.app import ZengineApp, create_app
from zengine.fastpath import inline_unsafe
from zengine.log import configure_logging
from zengine.models import AuditEvent
from zengine.runtime import Runtime
from zengine.settings import LoggingSettings, Settings, load_settings
from zengine.testing import plugin_list

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
HOME, ROAMING, ATTACKER, DENIED = "192.0.2.10", "192.0.2.77", "203.0.113.66", "198.51.100.9"


class Recorder:
    """An audit sink that declares itself safe for the event loop (a list append)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @hookimpl
    def zengine_audit(self, event: AuditEvent) -> None:
        self.events.append(event)

    @hookimpl
    def zengine_inline_safe(self) -> bool:
        return True


class Blocking:
    """An audit sink that does not say whether it blocks."""

    @hookimpl
    def zengine_audit(self, event: AuditEvent) -> None:
        pass


def _settings(tmp_path: Path, fast: bool, environ: dict[str, str] | None = None) -> Settings:
    users = tmp_path / "users.toml"
    if not users.exists():
        text = (EXAMPLE_CONFIG.parent / "users.example.toml").read_text(encoding="utf-8")
        # The same users with cheap hashes, and a disabled one.
        for name, password in (("alice", "wonderland"), ("bob", "builder")):
            start = text.index(f"[users.{name}]\npassword_hash = ")
            end = text.index("\n", start + len(f"[users.{name}]\n"))
            text = (text[:start] + f'[users.{name}]\npassword_hash = "{CHEAP.hash(password)}"'
                    + text[end:])
        text += (f'\n[users.carol]\npassword_hash = "{CHEAP.hash("carol-pw")}"\n'
                 'enabled = false\n[[users.carol.accounts]]\nident = "carol"\n'
                 'sip_username = "3001"\nsip_password = "c-sip"\ndomain = "pbx.example.com"\n')
        users.write_text(text, encoding="utf-8")
    settings = load_settings(EXAMPLE_CONFIG, environ={
        "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0",
        "ZENGINE_SERVER__FAST_PATH": "true" if fast else "false",
        "ZENGINE_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
        "ZENGINE_PLUGINS__STATIC__USERS_FILE": str(users),
        "ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "3",
        "ZENGINE_PLUGINS__GUARD__DENY": '{ "*" = ["198.51.100.0/24"] }',
        "ZENGINE_PLUGINS__GUARD__ALLOW": '{ "/provision" = ["192.0.2.0/24"] }',
        **(environ or {}),
    })
    return settings


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys (only those) are deleted afterwards."""
    value = f"zt-fast-{uuid.uuid4().hex[:12]}:"
    yield value
    try:
        client: Any = redis_client()
    except BaseException:
        return
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)


def _app(tmp_path: Path, fast: bool, *extra: tuple[str, object]) -> ZengineApp:
    return create_app(_settings(tmp_path, fast), load_entrypoints=False,
                      plugins=[*plugin_list(*BUILTINS, "guard"), *extra])


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _requests() -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """(method, path and query, address, headers)."""
    a = "username=alice&password=wonderland"
    b = "u=bob&p=builder"
    for query in (f"{a}&version=1.14", f"{a}&version=1.5", f"{a}&version=1.0", a,
                  f"{a}&version=1.99", f"{a}&version=1.14-beta", f"{a}&format=legacy",
                  f"{a}&format=desktop", f"{b}&v=1.14", f"{b}&v=1.3"):
        for _ in range(3):  # the first builds, the next ones are returning phones
            yield "GET", f"/id.php?{query}", HOME, {}
    yield "GET", "/desktop?username=alice&password=wonderland", HOME, {}
    yield "GET", "/desktop?username=alice&password=wonderland", HOME, {}
    yield "GET", "/provision?username=alice&password=wonderland&version=1.14", HOME, {}
    yield "GET", "/provision?username=alice&password=wonderland&version=1.14", HOME, {}
    # Not allowed on /provision from outside 192.0.2.0/24, denied everywhere from DENIED.
    yield "GET", "/provision?username=alice&password=wonderland&version=1.14", ATTACKER, {}
    yield "GET", f"/id.php?{a}&version=1.14", DENIED, {}
    yield "GET", f"/id.php?{a}&version=1.14", DENIED, {"User-Agent": "Zoiper"}
    # Basic credentials, right and wrong; placeholders; a wrong password after a hit.
    yield "GET", "/desktop", HOME, _basic("alice", "wonderland")
    yield "GET", "/desktop", HOME, _basic("alice", "wonderland")
    yield "GET", "/desktop", HOME, _basic("alice", "nope")
    yield "GET", "/id.php?username=[user]&password=[pass]", HOME, _basic("bob", "builder")
    yield "GET", "/id.php?username=[user]&password=[pass]", HOME, _basic("bob", "builder")
    yield "GET", f"/id.php?{a}&version=1.14", HOME, {}
    yield "GET", "/id.php?username=alice&password=wrong&version=1.14", HOME, {}
    yield "GET", f"/id.php?{a}&version=1.14", HOME, {}
    yield "GET", f"/id.php?{a}&version=1.14", HOME, {}
    # The attacker locks alice out for every address that never logged in; home still works.
    for i in range(3):
        yield "GET", f"/id.php?username=alice&password=guess{i}&version=1.14", ATTACKER, {}
    yield "GET", f"/id.php?{a}&version=1.14", ATTACKER, {}
    yield "GET", f"/id.php?{a}&version=1.14", ROAMING, {}
    for _ in range(3):
        yield "GET", f"/id.php?{a}&version=1.14", HOME, {}
    # Now alice is cached again: the attacker's address and a new one are still refused.
    yield "GET", f"/id.php?{a}&version=1.14", ATTACKER, {}
    yield "GET", f"/id.php?{a}&version=1.14", ROAMING, {}
    yield "GET", f"/id.php?{a}&version=1.14", HOME, {}
    # The disabled user, an unknown one, bad input of every kind.
    for _ in range(2):
        yield "GET", "/id.php?username=carol&password=carol-pw&version=1.14", HOME, {}
        yield "GET", "/id.php?username=nobody&password=x&version=1.14", HOME, {}
    for query in (f"{a}&version=abc", f"{a}&version=0.9", f"{a}&username=alice",
                  f"{a}&u=alice", "username=alice", "password=wonderland", "",
                  f"username=alice&password={'x' * 300}", f"{a}&version=1.14&format=nope",
                  "username=alice&password=wonder%00land", "username=%ff&password=x",
                  f"{b}&v=1.14"):
        yield "GET", f"/id.php?{query}", HOME, {}
    yield "HEAD", f"/id.php?{a}&version=1.14", HOME, {}
    yield "POST", "/id.php", HOME, {"Content-Type": "application/x-www-form-urlencoded",
                                    "X-Body": f"{a}&version=1.14"}
    yield "GET", f"/id.php/?{a}&version=1.14", HOME, {}
    yield "GET", f"/nowhere?{a}&version=1.14", HOME, {}
    for _ in range(2):
        yield "GET", f"/id.php?{b}&v=1.14", HOME, {"X-Forwarded-For": f"{HOME}, {DENIED}"}


_VARYING = ("request_id", "timestamp", "duration_ms")


def _fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """structlog caches a module's logger at its first use, with the configuration of that
    moment (an earlier test's capture, say): the modules whose lines are compared get fresh
    ones, bound to the configuration below."""
    import structlog

    import zengine_audit
    import zengine_guard.guard
    from zengine import fastpath, pipeline

    for module, name, logger in ((pipeline, "log", "zengine.pipeline"),
                                 (fastpath, "log", "zengine.fastpath"),
                                 (zengine_audit, "log", "zengine.audit"),
                                 (zengine_guard.guard, "log", "zengine.guard"),
                                 (zengine_guard.guard, "security_log", "zengine.security")):
        monkeypatch.setattr(module, name, structlog.get_logger(logger))


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [{k: v for k, v in line.items() if k not in _VARYING} for line in lines
            if not line["event"].startswith(("zengine.started", "fastpath."))]


def _send(app: ZengineApp,
          requests: Iterable[tuple[str, str, str, dict[str, str]]]) -> list[Any]:
    """Each request through ``app`` from its real address; (method, url, address, status,
    raw headers, body) per answer. The app's log handlers are removed afterwards."""
    answers: list[Any] = []
    try:
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            for method, url, address, headers in requests:
                headers = {"X-Forwarded-For": address, **headers}
                body = headers.pop("X-Body", None)
                reply = client.request(method, url, headers=headers, content=body)
                answers.append((method, url, address, reply.status_code,
                                reply.headers.raw, reply.content))
    finally:
        logging.getLogger().handlers[:] = []
    return answers


def _run(app: ZengineApp) -> tuple[list[Any], list[dict[str, Any]], int]:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="info"), stream=stream)
    fast_answers = 0
    front = app.front
    assert front is not None

    async def counting(scope: Any, receive: Any, send: Any) -> bool:
        nonlocal fast_answers
        answered = await front(scope, receive, send)
        fast_answers += answered
        return answered

    app.front = counting
    answers = _send(app, _requests())
    return answers, _lines(stream), fast_answers


def test_fast_and_long_path_answer_alike(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh_loggers(monkeypatch)
    fast_audit, slow_audit = Recorder(), Recorder()
    fast, fast_lines, fast_count = _run(_app(tmp_path, True, ("recorder", fast_audit)))
    slow, slow_lines, slow_count = _run(_app(tmp_path, False, ("recorder", slow_audit)))
    assert slow_count == 0
    # Most logins above are returning phones: the fast app answered them on the loop.
    assert fast_count >= 25, fast_count
    assert len(fast) == len(slow)
    for one, other in zip(fast, slow, strict=True):
        assert one == other
    statuses = {answer[3] for answer in fast}
    assert {200, 403, 405, 404, 429, 400} <= statuses, statuses
    assert fast_lines == slow_lines
    assert sum(line["event"] == "provision.request" for line in fast_lines) >= len(fast) - 4
    assert [dataclasses.astuple(e) for e in fast_audit.events] == \
        [dataclasses.astuple(e) for e in slow_audit.events]
    assert {e.event for e in fast_audit.events} >= {
        "login.accepted", "document.served", "login.refused", "login.locked"}


def test_a_locked_user_is_refused_on_the_fast_path(tmp_path: Path) -> None:
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        url = "/id.php?username=alice&password=wonderland&version=1.14"
        home = {"X-Forwarded-For": HOME}
        for _ in range(2):
            assert client.get(url, headers=home).status_code == 200
        assert len(runtime.fast) == 1
        # A lockout that the memo does not hear about (another worker's counters, say).
        from zengine_guard.state import Who

        guard = runtime.state["guard"]
        for i in range(3):
            guard.state.fail(Who("", "alice", ATTACKER), f"digest{i}", time.time())
        answer = client.get(url, headers={"X-Forwarded-For": ATTACKER})
        assert answer.status_code == 429
        assert answer.headers["retry-after"]
        # The lockout made the login cache (and with it the memo) forget alice.
        assert len(runtime.fast) == 0
        assert client.get(url, headers=home).status_code == 200


@pytest.mark.parametrize("extra", ["blocking_plugin", "redis_guard", "switched_off"])
def test_zengine_inline_safe_decides_whether_the_fast_path_runs(
        tmp_path: Path, extra: str, redis_prefix: str) -> None:
    plugins: list[tuple[str, object]] = [("recorder", Recorder())]
    if extra == "blocking_plugin":
        plugins.append(("blocking", Blocking()))
    environ = {}
    if extra == "redis_guard":
        redis_client()  # skips (fails under CI) without the local Redis
        environ = {"ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
                   "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": redis_prefix}
    settings = _settings(tmp_path, extra != "switched_off", environ)
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS, "guard"), *plugins])
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        assert not runtime.fast.enabled
        for _ in range(2):
            answer = client.get("/id.php?username=bob&password=builder&version=1.14",
                                headers={"X-Forwarded-For": HOME})
            assert answer.status_code == 200
        assert len(runtime.fast) == 0
    safe = create_app(_settings(tmp_path, True), load_entrypoints=False,
                      plugins=[*plugin_list(*BUILTINS, "guard"), ("recorder", Recorder())])
    with TestClient(safe):
        assert safe.state.runtime.fast.enabled
        assert inline_unsafe(safe.state.runtime) == []


def _tenant_app(tmp_path: Path, fast: bool, recorder: Recorder) -> ZengineApp:
    from tests import tenants_kit

    path = tenants_kit.config(tmp_path, resolve='["host", "path_key", "login_suffix"]')
    settings = load_settings(path, environ={"ZENGINE_SERVER__FAST_PATH": str(fast).lower()})
    return create_app(settings, load_entrypoints=False,
                      plugins=[*plugin_list(*BUILTINS, "guard"), ("recorder", recorder)])


def test_fast_and_long_path_agree_on_tenants(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tenants with the same username: the memo is per tenant, resolved by the same
    function the long path calls."""
    _fresh_loggers(monkeypatch)
    from tests import tenants_kit

    acme, globex = tenants_kit.HOSTS["acme"], tenants_kit.HOSTS["globex"]
    key = tenants_kit.KEYS["acme"][0]
    requests = []
    for _ in range(3):
        for host, user, password in (
                (acme, "alice", "acme-pass-1"), (globex, "alice", "globex-pass-2"),
                (acme, "alice", "globex-pass-2"), ("elsewhere.example", "alice", "acme-pass-1"),
                ("prov.other.example", "alice@globex", "globex-pass-2"),
                (acme, "alice@globex", "globex-pass-2")):
            requests.append((f"/id.php?u={user}&p={password}&v=1.14", host))
        requests.append((f"/t/{key}/id.php?u=alice&p=acme-pass-1&v=1.14", "any.example"))

    def run(app: ZengineApp) -> tuple[list[Any], list[dict[str, Any]]]:
        front = app.front
        assert front is not None

        async def counting(scope: Any, receive: Any, send: Any) -> bool:
            answered = await front(scope, receive, send)
            served_fast.append(answered)
            return answered

        app.front = counting
        stream = io.StringIO()
        configure_logging(LoggingSettings(format="json", level="info"), stream=stream)
        try:
            with TestClient(app) as client:
                answers = [(url, host, *(lambda r: (r.status_code, r.headers.raw, r.content))(
                    client.get(url, headers={"Host": host}))) for url, host in requests]
                # Before the runtime stops (which empties the memos).
                memos.update((n, len(t.fast)) for n, t in app.state.runtime.tenants.items())
        finally:
            logging.getLogger().handlers[:] = []
        return answers, _lines(stream)

    memos: dict[str, int] = {}
    fast_audit, slow_audit = Recorder(), Recorder()
    fast_app = _tenant_app(tmp_path, True, fast_audit)
    served_fast: list[bool] = []
    fast, fast_lines = run(fast_app)
    # Three good logins a round (the path key takes the long way): acme's alice, globex's,
    # and globex's again by her login suffix, which hits globex's memo in the first round.
    assert sum(served_fast) == 7, served_fast
    assert memos == {"acme": 1, "globex": 1}
    served_fast.clear()
    slow, slow_lines = run(_tenant_app(tmp_path, False, slow_audit))
    assert not any(served_fast)
    for one, other in zip(fast, slow, strict=True):
        assert one == other
    assert fast_lines == slow_lines
    assert sum(line["event"] == "provision.request" for line in fast_lines) == len(fast)
    assert fast_audit.events == slow_audit.events
    assert b"acme-sip-alice" in fast[0][4] and b"globex-sip-alice" in fast[1][4]
    assert sum(answer[2] == 200 for answer in fast) >= 12


def test_a_request_that_falls_through_is_parsed_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's parse of a request it cannot answer (a first login, a wrong password)
    is the long path's: build_request runs once per request, and the answers are as before."""
    import zengine.app
    import zengine.request

    calls: list[str] = []
    real = zengine.request.build_request

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["path"])
        return real(**kwargs)

    monkeypatch.setattr(zengine.request, "build_request", counting)
    monkeypatch.setattr(zengine.app, "build_request", counting)
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        url = "/id.php?username=alice&password=wonderland&version=1.14"
        home = {"X-Forwarded-For": HOME}
        first = client.get(url, headers=home)  # a miss: the long path serves it
        assert first.status_code == 200 and b"<account>" in first.content
        assert calls == ["/id.php"] and len(runtime.fast) == 1
        again = client.get(url, headers=home)  # a hit
        assert again.content == first.content and calls == ["/id.php"] * 2
        wrong = client.get(url.replace("wonderland", "nope"), headers=home)  # falls through
        assert wrong.status_code == 200 and b"<account>" not in wrong.content
        assert calls == ["/id.php"] * 3
        # A POST never passes the fast path: the long path parses it.
        posted = client.post("/id.php", data={"username": "alice", "password": "wonderland",
                                              "version": "1.14"}, headers=home)
        assert posted.content == first.content and calls == ["/id.php"] * 4


def test_a_kept_parse_serves_only_its_own_request_and_goes_with_the_memo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A returning phone's request, byte for byte the one that hit the memo, is not parsed
    again; any other byte (the password, a header, the address) is, and a kept parse (it
    holds the password) is dropped when its memo entry is: a wrong password, a lockout."""
    import zengine.request

    calls: list[str] = []
    real = zengine.request.build_request

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["query"].decode())
        return real(**kwargs)

    monkeypatch.setattr(zengine.request, "build_request", counting)
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        url = "/id.php?username=alice&password=wonderland&version=1.14"
        home = {"X-Forwarded-For": HOME}
        first = client.get(url, headers=home)  # the long path; then a hit, whose parse is kept
        assert client.get(url, headers=home).content == first.content
        assert len(calls) == 2 and len(runtime.fast._parses) == 1
        for _ in range(3):
            assert client.get(url, headers=home).content == first.content
        assert len(calls) == 2  # the same bytes: the kept parse
        # Another user agent: parsed, served, kept too; another address, a third shape:
        # parsed and served, not kept (PARSES_PER_ENTRY).
        assert client.get(url, headers={**home, "User-Agent": "Zoiper5"}).content \
            == first.content
        assert client.get(url, headers={"X-Forwarded-For": ROAMING}).status_code == 200
        assert len(calls) == 4 and len(runtime.fast._parses) == 2
        # Another password under the same name is never taken for the kept one.
        wrong = client.get(url.replace("wonderland", "wonderlanD"), headers=home)
        assert b"<account>" not in wrong.content and len(calls) == 5
        # The failed login made the login cache, and with it the memo, forget alice: her
        # parses (her password) went with the entry.
        assert len(runtime.fast) == 0 and runtime.fast._parses == {}
        assert client.get(url, headers=home).content == first.content
        assert len(calls) == 6  # the long path's parse


def test_a_parse_is_not_kept_for_an_entry_already_forgotten(tmp_path: Path) -> None:
    """A hit's parse is kept after its memo lookup; a worker thread may have forgotten the
    entry in between (a failed login): then nothing is kept."""
    from zengine.fastpath import _Entry, _Parse

    app = _app(tmp_path, True, ("recorder", Recorder()))
    fast = app.state.runtime.fast
    entry = _Entry("alice", b"digest", object(), (), 0.0)  # type: ignore[arg-type]
    fast._drop_parses([entry])
    fast._keep_parse(b"key", _Parse(entry, object(), object(), ""),  # type: ignore[arg-type]
                     fast)
    assert fast._parses == {} and entry.parses == []


def test_a_hit_sends_what_it_made_again_only_for_the_same_values(tmp_path: Path) -> None:
    """A returning phone's hit is the one before (the same parts): its login attempt and its
    audit events (frozen) are sent again, not made again; an event whose values changed is
    made anew."""
    from zengine import pipeline
    from zengine.models import ProvisionRequest

    recorder = Recorder()
    app = _app(tmp_path, True, ("recorder", recorder))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        url = "/id.php?username=alice&password=wonderland&version=1.14"
        for _ in range(4):
            assert client.get(url, headers={"X-Forwarded-For": HOME}).status_code == 200
        runtime: Runtime = app.state.runtime
    served = [e for e in recorder.events if e.event == "document.served"]
    assert len(served) == 4 and served[2] is served[3] and served[1] == served[3]
    request = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr=HOME,
                               credentials=None, version_raw=None)
    outcome = pipeline.Outcome(username="alice", backend="static", account_count=2)
    made: dict[str, Any] = {}
    recorder.events.clear()
    for count in (2, 2, 3):
        outcome.account_count = count
        pipeline._audit(runtime, request, outcome, "document.served", "served", made=made)
    assert [e.account_count for e in recorder.events] == [2, 2, 3]
    assert recorder.events[0] is recorder.events[1]


def test_a_kept_hit_refused_by_the_guard_answers_the_refusal(tmp_path: Path) -> None:
    """The same returning phone, its hit kept (the reply too), then locked out by counters
    the memo does not hear about: the guard's hook still runs and its refusal is answered,
    not the reply kept from before."""
    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        url = "/id.php?username=alice&password=wonderland&version=1.14"
        home = {"X-Forwarded-For": HOME}
        for _ in range(4):
            assert client.get(url, headers=home).status_code == 200
        (parse,) = runtime.fast._parses.values()
        assert parse.hit is not None and "reply" in parse.hit.made
        from zengine_guard.state import Who

        for i in range(3):
            runtime.state["guard"].state.fail(Who("", "alice", HOME), f"d{i}", time.time())
        answer = client.get(url, headers=home)
        assert answer.status_code == 429 and b"Too many" in answer.content


def test_a_kept_parse_whose_client_changes_looks_up_that_clients_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The document key kept with a parse is for the client detected then: the same bytes
    detected as another client (a plugin's answer changed) take that client's document."""
    from zengine.models import ClientInfo, Version

    app = _app(tmp_path, True, ("recorder", Recorder()))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        url = "/id.php?username=alice&password=wonderland&version=1.14"
        home = {"X-Forwarded-For": HOME}
        older = client.get(url.replace("1.14", "1.5"), headers=home).content  # cached
        newest = [client.get(url, headers=home).content for _ in range(4)]
        assert newest[0] == newest[3] != older
        (parse,) = runtime.fast._parses.values()
        assert parse.doc_key is not None
        monkeypatch.setattr(runtime.hooks, "detect_client",
                            lambda request, rt: ClientInfo("mobile", Version(1, 5), "1.14"))
        assert client.get(url, headers=home).content == older
