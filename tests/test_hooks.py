"""Each hook of the contract, exercised through a fresh plugin manager with test plugins."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr
from starlette.testclient import TestClient

from tests.conftest import BUILTINS, EXAMPLE_CONFIG
from zengine import hookimpl
from zengine.app import create_app
from zengine.errors import AccountDataError, BackendUnavailable, ConfigError
from zengine.models import (
    Account,
    AuditEvent,
    ClientInfo,
    Command,
    Credentials,
    Document,
    Element,
    Identity,
    PluginSettingsSpec,
    Rejected,
    Transform,
    Version,
)
from zengine.pipeline import handle
from zengine.request import build_request
from zengine.runtime import Runtime, build_runtime
from zengine.settings import load_settings, settings_from_mapping
from zengine.testing import plugin_list


def _account(ident: str, source: str) -> Account:
    return Account(ident=ident, sip_username=ident, sip_password=SecretStr("pw"),
                   domain="example.com", source=source)


class Backend:
    """A configurable in-memory backend."""

    def __init__(self, name: str, users: dict[str, str], accounts: Iterable[str] = ()) -> None:
        self.name, self.users, self.accounts = name, users, list(accounts)
        self.asked = 0

    @hookimpl
    def zengine_authenticate(self, credentials: Credentials) -> Identity | Rejected | None:
        self.asked += 1
        if credentials.username not in self.users:
            return None
        if self.users[credentials.username] != credentials.password.get_secret_value():
            return Rejected(self.name)
        return Identity(credentials.username, backend=self.name)

    @hookimpl
    def zengine_find_identity(self, username: str) -> Identity | None:
        return Identity(username, backend=self.name) if username in self.users else None

    @hookimpl
    def zengine_load_accounts(self, identity: Identity) -> list[Account]:
        return [_account(ident, self.name) for ident in self.accounts]


def runtime_with(*extra: tuple[str, object], config: dict[str, Any] | None = None) -> Runtime:
    settings = settings_from_mapping(config or {}, environ={})
    runtime = build_runtime(settings, load_entrypoints=False,
                            plugins=[*plugin_list("zoiper", "urls"), *extra])
    runtime.start()
    return runtime


def run(runtime: Runtime, query: str, headers: dict[str, str] | None = None) -> Any:
    return handle(lambda: build_request(path="/id.php", query=query.encode(), body=b"",
                                        headers=headers or {}, client_addr="test",
                                        settings=runtime.settings), runtime)


def test_zengine_authenticate_chain_order_comes_from_config() -> None:
    first = Backend("first", {"u": "one"}, ["a1"])
    second = Backend("second", {"u": "two"}, ["a2"])
    for chain, ok_password in ((["first", "second"], "one"), (["second", "first"], "two")):
        first.asked = second.asked = 0
        runtime = runtime_with(("first", first), ("second", second),
                               config={"auth": {"chain": chain}})
        assert b"<account>" in run(runtime, f"u=u&p={ok_password}").body
        # The other password is rejected by whichever backend is asked first: the chain stops.
        other = "two" if ok_password == "one" else "one"
        reply = run(runtime, f"u=u&p={other}")
        assert b"Wrong username or password" in reply.body
        assert (first.asked, second.asked) == ((2, 0) if chain[0] == "first" else (0, 2))


def test_zengine_authenticate_abstain_passes_to_next_backend() -> None:
    first = Backend("first", {})
    second = Backend("second", {"u": "pw"}, ["acc"])
    runtime = runtime_with(("first", first), ("second", second),
                           config={"auth": {"chain": ["first", "second"]}})
    assert b"<ident>acc</ident>" in run(runtime, "u=u&p=pw").body
    assert first.asked == 1


def test_chain_naming_unknown_backend_is_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuch"):
        runtime_with(("first", Backend("first", {})), config={"auth": {"chain": ["nosuch"]}})
    with pytest.raises(ConfigError, match=r"chain names \['first'\] more than once"):
        runtime_with(("first", Backend("first", {})),
                     config={"auth": {"chain": ["first", "first"]}})


def test_zengine_load_accounts_merges_and_refuses_duplicates() -> None:
    login = Backend("login", {"u": "pw"})
    one, two = Backend("one", {}, ["x", "y"]), Backend("two", {}, ["z"])
    # Outside the chain, "one" and "two" are pure account sources.
    only_login = {"auth": {"chain": ["login"]}}
    runtime = runtime_with(("login", login), ("one", one), ("two", two), config=only_login)
    body = run(runtime, "u=u&p=pw").body
    assert body.count(b"<account>") == 3
    clash = runtime_with(("login", login), ("one", one), ("three", Backend("three", {}, ["x"])),
                         config=only_login)
    with pytest.raises(AccountDataError, match="duplicate account ident 'x'"):
        clash.hooks.load_accounts(Identity("u", "login"), clash)
    reply = run(clash, "u=u&p=pw")
    assert reply.status == 500 and b"could not be provisioned" in reply.body


def test_zengine_load_accounts_never_mixes_two_backends_users() -> None:
    # Both backends know "alice"; they are different people.
    first = Backend("first", {"alice": "one"}, ["first-acc"])
    second = Backend("second", {"alice": "two"}, ["second-acc"])
    chain = {"auth": {"chain": ["first", "second"]}}
    runtime = runtime_with(("first", first), ("second", second), config=chain)
    body = run(runtime, "u=alice&p=one").body
    assert b"first-acc" in body and b"second-acc" not in body
    trusting = {"auth": {"chain": ["first", "second"], "account_sources": {"first": ["second"]}}}
    runtime = runtime_with(("first", first), ("second", second), config=trusting)
    body = run(runtime, "u=alice&p=one").body
    assert b"first-acc" in body and b"second-acc" in body
    with pytest.raises(ConfigError, match=r"account_sources.first names \['nosuch'\]"):
        runtime_with(("first", first), config={"auth": {"account_sources": {"first": ["nosuch"]}}})


def test_zengine_find_identity_used_by_render() -> None:
    from zengine.render import render_document

    runtime = runtime_with(("b", Backend("b", {"u": "pw"}, ["acc"])))
    assert b"<ident>acc</ident>" in render_document(runtime, "u", version="1.14")


class Unavailable:
    @hookimpl
    def zengine_authenticate(self) -> None:
        raise BackendUnavailable("directory down")


def test_backend_unavailable_is_503_and_audited() -> None:
    events: list[AuditEvent] = []

    class Recorder:
        @hookimpl
        def zengine_audit(self, event: AuditEvent) -> None:
            events.append(event)

    runtime = runtime_with(("down", Unavailable()), ("rec", Recorder()))
    reply = run(runtime, "u=u&p=pw")
    assert reply.status == 503
    assert b"temporarily unavailable" in reply.body
    assert [e.event for e in events] == ["backend.unavailable"]


def test_zengine_audit_observer_exceptions_are_swallowed() -> None:
    seen: list[str] = []

    class Broken:
        @hookimpl
        def zengine_audit(self, event: AuditEvent) -> None:
            seen.append(event.event)
            raise RuntimeError("observer bug")

    runtime = runtime_with(("b", Backend("b", {"u": "pw"}, ["acc"])), ("broken", Broken()))
    reply = run(runtime, "u=u&p=pw")
    assert reply.status == 200
    assert seen == ["login.accepted", "document.served"]
    assert all("pw" not in e for e in seen)


def test_zengine_detect_client_plugin_decides_first() -> None:
    class Branded:
        @hookimpl(tryfirst=True)
        def zengine_detect_client(self, request: Any) -> ClientInfo | None:
            if request.headers.get("user-agent") == "AcmePhone":
                return ClientInfo("mobile", Version(1, 14), "acme")
            return None

    runtime = runtime_with(("b", Backend("b", {"u": "pw"}, ["acc"])), ("branded", Branded()))
    reply = run(runtime, "u=u&p=pw&v=not-a-version", headers={"user-agent": "AcmePhone"})
    assert reply.status == 200
    assert b"Unknown provisioning version" in run(runtime, "u=u&p=pw&v=not-a-version").body


def test_zengine_build_document_zengine_transforms_zengine_postprocess_document() -> None:
    class Family:
        @hookimpl
        def zengine_detect_client(self, request: Any) -> ClientInfo | None:
            return ClientInfo("toy", Version(1, 2), "1.2")

        @hookimpl
        def zengine_build_document(self, accounts: list[Any], client: ClientInfo) -> Document:
            root = Element("toy", children=[Element("a", "1"), Element("b", "2"),
                                            Element("c", "3")])
            return Document(root=root, client=client)

        @hookimpl
        def zengine_transforms(self) -> list[Transform]:
            def remove(tag: str) -> Callable[[Document], None]:
                def step(document: Document) -> None:
                    document.root.remove(tag)
                return step

            def old_a(document: Document) -> None:
                document.root.rename("a", "old_a")

            return [Transform("toy", Version(1, 3), remove("c")),
                    Transform("toy", Version(1, 2), remove("b")),
                    Transform("toy", Version(1, 5), old_a)]

        @hookimpl
        def zengine_postprocess_document(self, document: Document) -> None:
            document.root.children.append(Element("stamp", "x&y"))

    runtime = runtime_with(("b", Backend("b", {"u": "pw"}, ["acc"])), ("family", Family()))
    body = run(runtime, "u=u&p=pw").body
    # 1.5 and 1.3 steps apply to a 1.2 client; the 1.2 step does not.
    assert b"<old_a>1</old_a>" in body and b"<b>2</b>" in body and b"<c>" not in body
    assert b"<stamp>x&amp;y</stamp>" in body


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: str = "blue"


class Configurable:
    started: list[str]

    def __init__(self) -> None:
        self.started = []

    @hookimpl
    def zengine_plugin_settings(self) -> PluginSettingsSpec:
        return PluginSettingsSpec("paint", Settings)

    @hookimpl
    def zengine_startup(self, runtime: Runtime) -> None:
        self.started.append(runtime.config("paint", Settings).colour)

    @hookimpl
    def zengine_shutdown(self, runtime: Runtime) -> None:
        self.started.append("stopped")


def test_zengine_plugin_settings_validated_with_key_names() -> None:
    plugin = Configurable()
    runtime = runtime_with(("paint", plugin), config={"plugins": {"paint": {"colour": "red"}}})
    assert plugin.started == ["red"]
    runtime.stop()
    assert plugin.started == ["red", "stopped"]
    with pytest.raises(ConfigError, match="unknown key 'colur'"):
        runtime_with(("paint", Configurable()), config={"plugins": {"paint": {"colur": "red"}}})
    with pytest.raises(ConfigError, match=r"\[plugins.nosuch\] configures no loaded plugin"):
        runtime_with(config={"plugins": {"nosuch": {}}})


def test_zengine_startup_and_zengine_shutdown_via_app_lifespan() -> None:
    plugin = Configurable()
    settings = settings_from_mapping({}, environ={})
    app = create_app(settings, load_entrypoints=False, plugins=[("paint", plugin)])
    with TestClient(app):
        assert plugin.started == ["blue"]
    assert plugin.started == ["blue", "stopped"]


def test_zengine_shutdown_failure_does_not_stop_others() -> None:
    calls: list[str] = []

    class Bad:
        @hookimpl
        def zengine_shutdown(self) -> None:
            raise RuntimeError("bad")

    class Good:
        @hookimpl
        def zengine_shutdown(self) -> None:
            calls.append("good")

    runtime = runtime_with(("good", Good()), ("bad", Bad()))
    runtime.stop()
    assert calls == ["good"]


def test_zengine_cli_commands_are_added_to_the_cli(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from zengine import cli

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", required=True)

    def run_cmd(args: argparse.Namespace, runtime: Runtime) -> int:
        print(f"hello {args.name}; started={runtime.started}")
        return 3

    class WithCommand:
        @hookimpl
        def zengine_cli_commands(self) -> list[Command]:
            return [Command("greet", "say hello", configure, run_cmd)]

    from zengine.plugins import create_plugin_manager

    def fake_manager(**kwargs: Any) -> Any:
        return create_plugin_manager(load_entrypoints=False,
                                     plugins=[*plugin_list(*BUILTINS), ("cmd", WithCommand())],
                                     disabled=kwargs.get("disabled", ()))

    monkeypatch.setattr("zengine.plugins.create_plugin_manager", fake_manager)
    monkeypatch.setattr("zengine.runtime.create_plugin_manager", fake_manager)
    assert cli.main(["greet", "--config", str(EXAMPLE_CONFIG), "--name", "ann"]) == 3
    assert "hello ann; started=True" in capsys.readouterr().out


def test_disabled_plugin_is_blocked_before_loading() -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={"ZENGINE_PLUGINS__DISABLED": '["urls"]'})
    runtime = build_runtime(settings)
    assert "urls" not in runtime.hooks.plugin_names()
    assert "static" in runtime.hooks.plugin_names()


def test_installed_entry_points_register_every_builtin() -> None:
    runtime = build_runtime(settings_from_mapping({}, environ={}))
    names = set(runtime.hooks.plugin_names())
    assert {"zoiper", "static", "urls", "audit", "sql", "ldap"} <= names
    info = {i.name: i for i in runtime.hooks.plugin_info()}
    assert info["static"].distribution == "zengine"
    assert "zengine_authenticate" in info["static"].hooks


def test_hookimpl_with_wrong_return_type_is_reported() -> None:
    class Wrong:
        @hookimpl
        def zengine_authenticate(self) -> object:
            return SimpleNamespace()

    runtime = runtime_with(("wrong", Wrong()))
    reply = run(runtime, "u=u&p=pw")
    assert reply.status == 500 and b"<error" in reply.body


def test_users_file_path_resolves_next_to_config(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={})
    expected = EXAMPLE_CONFIG.parent / "users.example.toml"
    assert settings.resolve_path("users.example.toml") == expected


class CountingPasswords:
    def __init__(self) -> None:
        self.dummy = 0

    def verify(self, stored: str | None, password: str) -> bool:
        self.dummy += stored is None
        return False


def test_zengine_authenticate_all_abstain_costs_one_dummy_verification() -> None:
    runtime = runtime_with(("a", Backend("a", {})), ("b", Backend("b", {})),
                           config={"auth": {"chain": ["a", "b"]}})
    counter = CountingPasswords()
    runtime.__dict__["passwords"] = counter  # the cached property's slot
    assert b"Wrong username or password" in run(runtime, "u=nobody&p=pw").body
    assert counter.dummy == 1


def test_failed_logins_are_held_until_the_floor(tmp_path: Path) -> None:
    import time

    settings = load_settings(EXAMPLE_CONFIG, environ={"ZENGINE_AUTH__FAILURE_FLOOR_MS": "600"})
    app = create_app(settings, load_entrypoints=False, plugins=plugin_list(*BUILTINS))
    with TestClient(app) as client:
        for params in ({"u": "alice", "p": "wrong"}, {"u": "nobody", "p": "wrong"}):
            start = time.monotonic()
            response = client.get("/id.php", params=params)
            assert b"Wrong username or password" in response.content
            assert time.monotonic() - start >= 0.6


class WithRoutes:
    @hookimpl
    def zengine_register_routes(self, runtime: Runtime) -> list[Any]:
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, Response
        from starlette.routing import Route

        async def hello(request: Request) -> Response:
            started = request.app.state.runtime.started
            return PlainTextResponse(f"hello started={started} same={runtime.started}")

        async def styled(request: Request) -> Response:
            return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'self'"})

        return [Route("/hello", hello), Route("/styled", styled)]


def _routes_app(*extra: tuple[str, object]) -> Any:
    settings = load_settings(EXAMPLE_CONFIG, environ={})
    return create_app(settings, load_entrypoints=False,
                      plugins=[*plugin_list(*BUILTINS), *extra])


def test_zengine_register_routes_serves_plugin_routes_with_security_headers() -> None:
    with TestClient(_routes_app(("routes", WithRoutes()))) as client:
        response = client.get("/hello")
        assert response.status_code == 200
        assert response.text == "hello started=True same=True"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        # A route that sets its own policy keeps it.
        styled = client.get("/styled")
        assert styled.headers["content-security-policy"] == "default-src 'self'"
        # The provisioning paths still answer, and unknown paths get the error document.
        assert b"<error" in client.get("/nowhere").content
        assert client.get("/id.php", params={"u": "alice", "p": "wonderland"}).status_code == 200


def test_zengine_register_routes_never_redirects_a_trailing_slash() -> None:
    with TestClient(_routes_app(("routes", WithRoutes()))) as client:
        response = client.get("/hello/?token=s3cr3t-token", follow_redirects=False)
        assert response.status_code == 404
        assert "location" not in response.headers
        assert b"s3cr3t-token" not in response.content


def test_zengine_register_routes_refuses_a_core_path() -> None:
    class Clash:
        @hookimpl
        def zengine_register_routes(self) -> list[Any]:
            from starlette.responses import PlainTextResponse
            from starlette.routing import Route

            async def steal(request: Any) -> Any:
                return PlainTextResponse("mine")
            return [Route("/id.php", steal)]

    with pytest.raises(ConfigError, match=r"/id\.php"):
        _routes_app(("clash", Clash()))


def test_zengine_register_routes_keep_405_for_core_paths() -> None:
    with TestClient(_routes_app(("routes", WithRoutes()))) as client:
        response = client.delete("/id.php")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"


class Recorder:
    """Every audit event, as the audit plugin receives them."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @hookimpl
    def zengine_audit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def accepted(self) -> AuditEvent:
        (event,) = [e for e in self.events if e.event == "login.accepted"]
        return event


def test_login_accepted_audit_counts_the_static_users_accounts() -> None:
    """The real static backend and users file: alice has two accounts, bob one."""
    for user, password, count in (("alice", "wonderland", 2), ("bob", "builder", 1)):
        recorder = Recorder()
        runtime = build_runtime(load_settings(EXAMPLE_CONFIG), load_entrypoints=False,
                                plugins=[*plugin_list("zoiper", "static"), ("rec", recorder)])
        runtime.start()
        try:
            reply = run(runtime, f"u={user}&p={password}")
        finally:
            runtime.stop()
        assert reply.status == 200 and reply.body.count(b"<account>") == count, reply.body
        event = recorder.accepted()
        assert (event.username, event.account_count, event.backend) == (user, count, "static")
        assert [e.event for e in recorder.events] == ["login.accepted", "document.served"]


def test_login_accepted_audit_names_the_backends_spelling_and_is_written_without_accounts(
        ) -> None:
    class Canonical(Backend):
        @hookimpl
        def zengine_authenticate(self, credentials: Credentials) -> Identity | Rejected | None:
            if credentials.username.casefold() != "alice":
                return None
            return Identity("Alice", backend=self.name)  # as a directory spells it

    recorder = Recorder()
    runtime = runtime_with(("dir", Canonical("dir", {}, [])), ("rec", recorder))
    reply = run(runtime, "u=aLiCe&p=pw")
    assert b"<error" in reply.body  # no accounts: still a login the audit trail records
    event = recorder.accepted()
    assert (event.username, event.account_count) == ("Alice", 0)
