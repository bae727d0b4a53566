"""Tenants in one process: the resolution chain, the hook, unknown tenants answered like a
wrong login, per-tenant settings, and the configuration's checks."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import BUILTINS
from tests.tenants_kit import KEYS, PASSWORDS, config, error_text, login, served_sip
from zengine import hookimpl
from zengine.app import create_app
from zengine.errors import ConfigError
from zengine.models import UNKNOWN_TENANT, Document, Identity, ProvisionRequest
from zengine.runtime import Runtime
from zengine.settings import load_settings
from zengine.tenancy import key_digest, mask_scope, new_path_key
from zengine.testing import plugin_list

WRONG = "Wrong username or password."


def client_for(path: Path, *extra: tuple[str, object]) -> TestClient:
    settings = load_settings(path, environ={})
    return TestClient(create_app(settings, load_entrypoints=False,
                                 plugins=[*plugin_list(*BUILTINS), *extra]))


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(config(tmp_path)) as client:
        yield client


def get(client: TestClient, spec: dict[str, Any], **params: str) -> Any:
    return client.get(spec["path"], params={**spec["params"], **params},
                      headers=spec["headers"])


@pytest.mark.parametrize("how", ["host", "path_key", "login_suffix"])
@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_each_method_serves_the_tenants_own_alice(tenants: TestClient, how: str,
                                                  tenant: str) -> None:
    response = get(tenants, login(tenant, how))
    assert response.status_code == 200, response.text
    assert served_sip(response.content) == {tenant}
    # The other tenant's password is a wrong login here, whichever method placed it.
    other = "globex" if tenant == "acme" else "acme"
    crossed = get(tenants, login(tenant, how, password_of=other))
    assert error_text(crossed.content) == WRONG


def test_per_tenant_document_options(tenants: TestClient) -> None:
    acme = get(tenants, login("acme", "host"))
    globex = get(tenants, login("globex", "host"))
    assert b"acme-sid" in acme.content
    assert b"acme-sid" not in globex.content


def test_wildcard_host_and_every_rotated_key(tenants: TestClient) -> None:
    spec = login("globex", "host")
    spec["headers"] = {"host": "deep.down.GLOBEX.example."}
    assert served_sip(get(tenants, spec).content) == {"globex"}
    for key in KEYS["acme"]:
        spec = login("acme", "path_key")
        spec["path"] = f"/t/{key}/id.php"
        assert served_sip(get(tenants, spec).content) == {"acme"}
    # A second suffix of globex.
    spec = login("globex", "login_suffix")
    spec["params"]["username"] = "alice@Globex.Example"
    assert served_sip(get(tenants, spec).content) == {"globex"}


def _unknowns() -> list[dict[str, Any]]:
    base = {"params": {"username": "alice", "password": PASSWORDS["acme"]},
            "headers": {"host": "nobody.example"}}
    return [
        {**base, "path": "/t/NoSuchKey-dddddddddddddddddddddddddddddddddd/id.php"},
        {**base, "path": "/t/short/id.php"},
        {**base, "path": "/id.php"},  # no method places it, and there is no default
        {**base, "path": "/id.php",
         "params": {"username": "alice@nowhere", "password": PASSWORDS["acme"]}},
    ]


@pytest.mark.parametrize("basic", [False, True])
def test_unknown_tenant_is_answered_exactly_like_a_wrong_login(tenants: TestClient,
                                                               basic: bool) -> None:
    def ask(spec: dict[str, Any], password: str) -> Any:
        params = {**spec["params"], "password": password}
        if not basic:
            return tenants.get(spec["path"], params=params, headers=spec["headers"])
        token = base64.b64encode(f"{params['username']}:{password}".encode()).decode()
        return tenants.get(spec["path"], headers={**spec["headers"],
                                                  "authorization": f"Basic {token}"})

    wrong = ask(login("acme", "host"), "not-it")
    assert error_text(wrong.content) == WRONG
    for spec in _unknowns():
        answer = ask(spec, spec["params"]["password"])
        assert (answer.status_code, dict(answer.headers), answer.content) == (
            wrong.status_code, dict(wrong.headers), wrong.content), spec["path"]


def test_unknown_tenant_without_credentials_gets_the_missing_credentials_answer(
        tenants: TestClient) -> None:
    known = tenants.get("/id.php", headers={"host": "prov.acme.example"})
    unknown = tenants.get(f"/t/{'Z' * 30}/id.php")
    assert (known.status_code, known.content) == (unknown.status_code, unknown.content)


def test_default_tenant_serves_the_unplaced(tmp_path: Path) -> None:
    with client_for(config(tmp_path, default="globex")) as client:
        response = client.get("/id.php", params={"username": "alice",
                                                 "password": PASSWORDS["globex"]})
        assert served_sip(response.content) == {"globex"}
        # A wrong path key is still refused, never handed to the default.
        bad = client.get(f"/t/{'Q' * 30}/id.php",
                         params={"username": "alice", "password": PASSWORDS["globex"]})
        assert error_text(bad.content) == WRONG


def test_resolve_order_is_configurable(tmp_path: Path) -> None:
    # Suffix first: alice@globex on acme's host goes to globex.
    path = config(tmp_path, resolve='["login_suffix", "host"]')
    with client_for(path) as client:
        spec = login("globex", "login_suffix")
        spec["headers"] = {"host": "prov.acme.example"}
        assert served_sip(get(client, spec).content) == {"globex"}
        # Path keys are not in the chain: /t/<key>/ is not a provisioning path at all.
        assert client.get(login("acme", "path_key")["path"]).status_code == 404


def test_suffix_is_kept_when_another_tenant_decided(tenants: TestClient) -> None:
    # acme's host, globex's suffix: the username stays alice@globex, which acme lacks.
    spec = login("acme", "host")
    spec["params"]["username"] = "alice@globex"
    assert error_text(get(tenants, spec).content) == WRONG
    # The same tenant's suffix on its own host is dropped.
    spec["params"]["username"] = "alice@acme"
    assert served_sip(get(tenants, spec).content) == {"acme"}


class Recorder:
    """Resolves ``?tenant=`` by hook and records what later hooks see."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str, str]] = []

    @hookimpl
    def zengine_resolve_tenant(self, request: ProvisionRequest,
                               runtime: Runtime) -> str | None:
        assert runtime.tenant == ""  # asked on the global runtime
        return request.params.get("tenant")

    @hookimpl
    def zengine_postprocess_document(self, document: Document, identity: Identity,
                                     runtime: Runtime) -> None:
        self.seen.append(("doc", identity.tenant, runtime.tenant, ""))


def test_zengine_resolve_tenant_hook_decides_first_and_is_seen_by_later_hooks(
        tmp_path: Path) -> None:
    recorder = Recorder()
    with client_for(config(tmp_path), ("recorder", recorder)) as client:
        # The hook says globex, though the host says acme.
        spec = login("acme", "host", password_of="globex")
        assert served_sip(get(client, spec, tenant="globex").content) == {"globex"}
        assert recorder.seen == [("doc", "globex", "globex", "")]
        # A name that is not configured is an unknown tenant.
        answer = get(client, login("acme", "host"), tenant="initech")
        assert error_text(answer.content) == WRONG
        # No answer: the built-in chain decides.
        assert served_sip(get(client, login("acme", "host")).content) == {"acme"}


def test_unknown_tenant_attempts_are_counted_by_the_guard(tmp_path: Path) -> None:
    path = config(tmp_path, extra="[plugins.guard]\nlockout_threshold = 2\n")
    settings = load_settings(path, environ={})
    app = create_app(settings, load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS, "guard"))
    with TestClient(app) as client:
        statuses = []
        for n in range(4):
            answer = client.get(f"/t/{'U' * 30}/id.php",
                                params={"username": "alice", "password": f"guess{n}"})
            statuses.append(answer.status_code)
        assert statuses[-1] == 429, statuses
        # The lockout is the unknown tenant's: acme's alice still logs in.
        assert served_sip(get(client, login("acme", "host")).content) == {"acme"}
        guard = app.state.runtime.state["guard"]
        assert {e.tenant for e in guard.state.entries(time.time())} >= {UNKNOWN_TENANT}


def test_path_key_is_masked_in_the_scope() -> None:
    key = new_path_key()
    assert len(key) >= 43
    scope: dict[str, Any] = {"path": f"/t/{key}/id.php", "raw_path": b""}
    mask_scope(scope)
    assert scope["path"] == "/t/~/id.php" and key.encode() not in scope["raw_path"]
    assert scope["zengine.path_key"] == key
    assert len(key_digest(b"k" * 32, key)) == 64


@pytest.mark.parametrize(("table", "message"), [
    ("[tenants.a]\n[tenants.a.server]\nport = 1\n", "cannot differ per tenant"),
    ("[tenants.a]\n[tenants.a.auth]\nfailure_floor_ms = 1\n", "only account_sources, chain"),
    ("[tenants.a]\nhosts = ['x.example']\n[tenants.b]\nhosts = ['x.example']\n",
     "host 'x.example' names both tenant 'a' and 'b'"),
    ("[tenants.a]\npath_keys = ['" + "a" * 64 + "']\n", "path_keys need path_key_secret"),
    ("[tenants.a]\npath_keys = ['my-plain-secret-key']\n", "not the key itself"),
    ("[tenants]\ndefault = 'zz'\n[tenants.a]\n", "default 'zz' is not a tenant"),
    ("[tenants.A]\n", "a tenant name is"),
    ("[tenants.a]\n[tenants.a.plugins.static]\nusers_fil = 'x'\n", "[tenants.a]"),
    ("[tenants.a]\n[tenants.a.auth]\nchain = ['nosuch']\n", "[tenants.a] [auth] chain"),
    ("[tenants.a]\n[tenants.a.defaults]\nno_such_field = 1\n", "[tenants.a] [defaults]"),
])
def test_tenant_configuration_errors_name_the_table(tmp_path: Path, table: str,
                                                    message: str) -> None:
    path = tmp_path / "zengine.toml"
    path.write_text(table, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        settings = load_settings(path, environ={})
        create_app(settings, load_entrypoints=False, plugins=plugin_list(*BUILTINS))
    assert message in str(info.value)
    assert "my-plain-secret-key" not in str(info.value)


def test_tenant_runtimes_are_built_and_started_at_startup(tmp_path: Path) -> None:
    app = create_app(load_settings(config(tmp_path), environ={}), load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS))
    root: Runtime = app.state.runtime
    assert set(root.tenants) == {"acme", "globex"}
    with TestClient(app):
        for name, tenant in root.tenants.items():
            assert tenant.started and tenant.tenant == name and tenant.root is root
            assert "alice" in tenant.state["static"]
            # One verification pool bounds the machine, whatever the tenants.
            assert tenant.passwords is root.passwords
    assert not any(t.started for t in root.tenants.values())


class FailsForGlobex:
    """Opens a resource in every runtime's startup, and refuses globex's configuration."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    @hookimpl
    def zengine_startup(self, runtime: Runtime) -> None:
        if runtime.tenant == "globex":
            raise ConfigError("globex: no such colour")
        self.opened.append(runtime.tenant)
        runtime.state["opens"] = True

    @hookimpl
    def zengine_shutdown(self, runtime: Runtime) -> None:
        if runtime.state.pop("opens", False):
            self.closed.append(runtime.tenant)


def test_a_start_that_fails_part_way_releases_what_it_opened(tmp_path: Path) -> None:
    """As a reload's new app does when its config fails: the global runtime and acme had
    started (pools, plugin resources), globex refused; nothing stays open."""
    plugin = FailsForGlobex()
    app = create_app(load_settings(config(tmp_path), environ={}), load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("fails", plugin)])
    root: Runtime = app.state.runtime
    with pytest.raises(ConfigError, match="no such colour"):
        root.start()
    assert plugin.opened == ["", "acme"]
    assert sorted(plugin.closed) == ["", "acme"]
    assert not root.started and not any(t.started for t in root.tenants.values())
    assert root.passwords.pool._executor is None  # its threads are gone
    assert root.fast.deadlines._closed and root.documents._closed  # nothing kept from now


def test_cli_render_check_config_and_tenant_key(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.tenants_kit import PATH_SECRET, SIP
    from zengine import cli
    from zengine.tenancy import key_digest

    path = str(config(tmp_path))
    assert cli.main(["check-config", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "tenant acme: OK" in out and "tenant globex: OK" in out
    assert "tenants resolved by: host, path_key, login_suffix, default" in out
    for tenant in ("acme", "globex"):
        assert cli.main(["render", "--config", path, "-u", "alice", "--tenant", tenant]) == 0
        rendered = capsys.readouterr().out
        assert SIP[tenant] in rendered
        assert {t for t, sip in SIP.items() if sip in rendered} == {tenant}
    assert cli.main(["render", "--config", path, "-u", "alice", "--tenant", "initech"]) == 2
    assert "no tenant 'initech'; configured: acme, globex" in capsys.readouterr().err
    assert cli.main(["tenant-key", "--config", path]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert len(key) >= 43 and key not in captured.err
    assert key_digest(PATH_SECRET.encode(), key) in captured.err
