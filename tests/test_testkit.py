"""The plugin test kit (``zengine.testkit``, loaded through its ``pytest11`` entry point)."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import ROOT, runtime_of
from zengine import testkit
from zengine.api import Account, Credentials, Identity, Rejected, hookimpl
from zengine.testing import Golden
from zengine.testkit import ClientFactory, DocumentCheck, RuntimeFactory


class Acme:
    """A plugin as an author would write one, with a known user."""

    def __init__(self) -> None:
        self.started = self.stopped = 0

    @hookimpl
    def zengine_startup(self) -> None:
        self.started += 1

    @hookimpl
    def zengine_shutdown(self) -> None:
        self.stopped += 1

    @hookimpl
    def zengine_authenticate(self, credentials: Credentials) -> Identity | Rejected | None:
        if credentials.username != "acme-1":
            return None
        if credentials.password.get_secret_value() != "pw":
            return Rejected("acme")
        return Identity(credentials.username, backend="acme")

    @hookimpl
    def zengine_load_accounts(self, identity: Identity) -> list[Account]:
        return [Account(ident="acme-1", sip_username="1001", sip_password=SecretStr("s<&>"),
                        domain="sip.acme.example", source="acme")]


CHAIN = {"auth": {"chain": ["acme"], "failure_floor_ms": 0}}
PARAMS = {"u": "acme-1", "p": "pw", "v": "1.14"}


def test_client_factory_serves_only_the_named_plugins(
        zengine_client_factory: ClientFactory, zengine_check_document: DocumentCheck) -> None:
    acme = Acme()
    client = zengine_client_factory(["zoiper", "urls", ("acme", acme)], CHAIN)
    assert acme.started == 1
    response = client.get("/id.php", params=PARAMS)
    assert response.status_code == 200
    zengine_check_document(response.content, "mobile", "1.14")
    assert b"<password>s&lt;&amp;&gt;</password>" in response.content
    assert runtime_of(client).hooks.plugin_names() == ["zoiper", "urls", "acme"]
    wrong = client.get("/id.php", params={**PARAMS, "p": "nope"})
    assert b"Wrong username or password" in wrong.content


@pytest.fixture
def shutdown_seen() -> Iterator[Acme]:
    """Set up before the factory, so torn down after it: sees whether shutdown ran."""
    acme = Acme()
    yield acme
    assert (acme.started, acme.stopped) == (1, 1), "the test kit did not shut the app down"


def test_client_factory_runs_shutdown_after_the_test(
        shutdown_seen: Acme, zengine_client_factory: ClientFactory) -> None:
    zengine_client_factory(["zoiper", ("acme", shutdown_seen)], CHAIN)
    assert (shutdown_seen.started, shutdown_seen.stopped) == (1, 0)


def test_runtime_factory_calls_hooks_directly(zengine_runtime_factory: RuntimeFactory) -> None:
    runtime = zengine_runtime_factory([("acme", Acme())], CHAIN)
    assert runtime.started
    accounts = runtime.hooks.load_accounts(Identity("acme-1", "acme"), runtime)
    assert [a.ident for a in accounts] == ["acme-1"]


def test_factories_ignore_the_developers_environment(zengine_runtime_factory: RuntimeFactory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENGINE_SERVER__PORT", "9999")
    assert zengine_runtime_factory([]).settings.server.port == 8080
    explicit = zengine_runtime_factory([], environ={"ZENGINE_SERVER__PORT": "9999"})
    assert explicit.settings.server.port == 9999


def test_check_document_lists_every_problem(zengine_check_document: DocumentCheck) -> None:
    bad = (b"<options><prov_version>1.14</prov_version><accounts><account>"
           b"<no_such_field>x</no_such_field><SIP_transport_type>carrier-pigeon"
           b"</SIP_transport_type></account></accounts></options>")
    with pytest.raises(AssertionError) as failure:
        zengine_check_document(bad, "mobile", "1.14")
    assert "2 problem(s)" in str(failure.value)
    assert "no_such_field" in str(failure.value) and "carrier-pigeon" in str(failure.value)
    with pytest.raises(AssertionError, match="not well-formed"):
        zengine_check_document(b"<options>", "mobile", "1.14")


def test_check_document_knows_legacy_and_desktop(zengine_check_document: DocumentCheck) -> None:
    with pytest.raises(AssertionError, match="problem"):
        zengine_check_document(b"<options><bogus/></options>", "desktop", "1.0")
    with pytest.raises(AssertionError, match="problem"):
        zengine_check_document(b"<options><bogus/></options>", "legacy", "1.0")


def test_golden_fixture_is_next_to_the_test_file(zengine_golden: Golden,
                                                 request: pytest.FixtureRequest) -> None:
    assert zengine_golden.directory == Path(__file__).parent / "golden"
    assert request.config.getoption("--zengine-update-golden") is False
    assert zengine_golden.update is False


def test_golden_compares_bytes_shows_a_diff_and_updates(tmp_path: Path) -> None:
    Golden(tmp_path, update=True).check("a/doc.xml", b"<a>1</a>\n")
    assert (tmp_path / "a" / "doc.xml").read_bytes() == b"<a>1</a>\n"
    golden = Golden(tmp_path)
    golden.check("a/doc.xml", "<a>1</a>\n")
    with pytest.raises(AssertionError, match=r"-<a>1</a>\n\+<a>2</a>"):
        golden.check("a/doc.xml", b"<a>2</a>\n")
    with pytest.raises(AssertionError, match="missing golden file"):
        golden.check("other.xml", b"")
    with pytest.raises(ValueError, match="leaves"):
        golden.check("../escape.xml", b"")


def test_fixture_names_cannot_clash_with_the_projects_own() -> None:
    kit = {name for name, obj in inspect.getmembers(testkit)
           if type(obj).__name__ == "FixtureFunctionDefinition"}
    assert kit == {"zengine_app_factory", "zengine_client_factory", "zengine_runtime_factory",
                   "zengine_check_document", "zengine_golden"}
    ours: set[str] = set()
    for conftest in ROOT.glob("tests/**/conftest.py"):
        for node in ast.walk(ast.parse(conftest.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and any(
                    "fixture" in ast.unparse(d) for d in node.decorator_list):
                ours.add(node.name)
    assert ours and not kit & ours


def test_test_kit_is_registered_as_a_pytest_plugin(pytestconfig: pytest.Config) -> None:
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11", name="zengine")] == \
        ["zengine.testkit"]
    assert pytestconfig.pluginmanager.has_plugin("zengine")
