"""/livez, /readyz, /healthz and the zengine_readiness hook, through the real app."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from starlette.testclient import TestClient

import zengine_sql
from tests.conftest import BUILTINS, EXAMPLE_CONFIG, runtime_of
from tests.tenants_kit import config as tenants_config
from zengine import cli, hookimpl
from zengine.app import create_app
from zengine.errors import ConfigError
from zengine.models import PluginSettingsSpec, Readiness
from zengine.runtime import Runtime, build_runtime
from zengine.settings import load_settings, settings_from_mapping
from zengine.testing import plugin_list
from zengine_sql import migrate


class Probe:
    """A backend whose readiness the test sets, counting how often it is asked."""

    def __init__(self, *results: Readiness) -> None:
        self.results = list(results)
        self.calls = 0

    @hookimpl
    def zengine_readiness(self) -> list[Readiness]:
        self.calls += 1
        return self.results


class Broken:
    @hookimpl
    def zengine_readiness(self) -> list[Readiness]:
        raise RuntimeError("postgresql://admin:hunter2@db/zengine refused")


def client_with(*plugins: tuple[str, object], cache: float = 5.0,
                tables: Mapping[str, object] | None = None) -> TestClient:
    settings = load_settings(EXAMPLE_CONFIG, environ={
        "ZENGINE_SERVER__READINESS_CACHE_SECONDS": str(cache)})
    if tables:
        data = tomllib.loads(EXAMPLE_CONFIG.read_text())
        data["server"]["readiness_cache_seconds"] = cache
        data["plugins"].update(tables)
        settings = settings_from_mapping(data, environ={}, base_dir=EXAMPLE_CONFIG.parent)
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), *plugins])
    return TestClient(app)


def test_livez_and_healthz_answer_without_asking_backends() -> None:
    probe = Probe(Readiness("db", False, "database unreachable"))
    with client_with(("probe", probe)) as client:
        for path in ("/livez", "/healthz"):
            response = client.get(path)
            assert response.status_code == 200 and response.text == "ok\n"
            assert response.headers["cache-control"] == "no-store"
    assert probe.calls == 0


def test_zengine_readiness_all_ready_is_200() -> None:
    probe = Probe(Readiness("db", True), Readiness("directory", True))
    with client_with(("probe", probe)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "backends": [
        {"backend": "db", "ready": True}, {"backend": "directory", "ready": True}]}


def test_zengine_readiness_one_failure_is_503_naming_the_backend_without_detail() -> None:
    probe = Probe(Readiness("db", True),
                  Readiness("directory", False, "service bind refused",
                            "service account 'cn=svc' cannot bind on ldap://10.0.0.9"))
    with client_with(("probe", probe)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["backends"][1] == {"backend": "directory", "ready": False,
                                              "reason": "service bind refused"}
    assert "10.0.0.9" not in response.text and "cn=svc" not in response.text


def test_zengine_readiness_results_are_cached() -> None:
    probe = Probe(Readiness("db", True))
    with client_with(("probe", probe), cache=60) as client:
        for _ in range(20):
            assert client.get("/readyz").status_code == 200
    assert probe.calls == 1
    probe = Probe(Readiness("db", True))
    with client_with(("probe", probe), cache=0) as client:
        for _ in range(3):
            client.get("/readyz")
    assert probe.calls == 3


def test_zengine_readiness_probe_that_raises_is_not_ready_and_leaks_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    with client_with(("broken", Broken())) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["backends"] == [
        {"backend": "broken", "ready": False, "reason": "probe failed"}]
    assert "hunter2" not in response.text
    assert "hunter2" not in capsys.readouterr().out


def test_readyz_sql_never_migrated_then_at_head(tmp_path: Path) -> None:
    db = tmp_path / "zengine.db"
    sql = {"sql": {"url": f"sqlite:///{db}"}}
    with client_with(("sql", zengine_sql), cache=0, tables=sql) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["backends"] == [
            {"backend": "sql", "ready": False, "reason": "schema not at head"}]
        state = zengine_sql.get_state(runtime_of(client))
        assert state is not None
        migrate.upgrade(state.engine)
        response = client.get("/readyz")
        assert response.status_code == 200, response.text


def test_readyz_sql_unreachable_names_no_password() -> None:
    sql = {"sql": {"url": "postgresql+psycopg://zengine:pw-8c1d@127.0.0.1:1/zengine",
                   "connect_timeout": 1}}
    with client_with(("sql", zengine_sql), cache=0, tables=sql) as client:
        response = client.get("/readyz")
        runtime = runtime_of(client)
        results = runtime.hooks.readiness(runtime)
    assert response.status_code == 503
    assert response.json()["backends"][0]["reason"] == "database unreachable"
    assert "pw-8c1d" not in response.text
    assert results[0].detail and "pw-8c1d" not in results[0].detail


def test_unknown_plugin_name_in_disabled_is_refused() -> None:
    settings = settings_from_mapping({"plugins": {"disabled": ["zopier"]}}, environ={})
    with pytest.raises(ConfigError, match=r"disabled names \['zopier'\].*installed plugins"):
        build_runtime(settings)


def test_serve_refuses_a_config_that_disables_every_document_builder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "zengine.toml"
    config.write_text('[plugins]\ndisabled = ["zoiper"]\n')
    assert cli.main(["serve", "--config", str(config)]) == 2
    assert "no loaded plugin builds documents ([plugins] disabled: zoiper)" in \
        capsys.readouterr().err


class ProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: str = "ldap://global.example"


class TenantProbe:
    """A directory per ``[plugins.probe]`` table (a tenant may have its own): the one at
    ``ldap://down.example`` is not ready. Counts the probes, by tenant."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def zengine_plugin_settings(self) -> PluginSettingsSpec:
        return PluginSettingsSpec("probe", ProbeSettings)

    @hookimpl
    def zengine_readiness(self, runtime: Runtime) -> list[Readiness]:
        self.calls.append(runtime.tenant)
        config = runtime.config("probe", ProbeSettings)
        if config.directory == "ldap://down.example":
            return [Readiness("directory", False, "service bind refused", config.directory)]
        return [Readiness("directory", True)]


def test_zengine_readiness_probes_every_tenant_and_names_the_one_not_ready(
        tmp_path: Path) -> None:
    probe = TenantProbe()
    settings = load_settings(tenants_config(tmp_path, extra="""
[tenants.acme.plugins.probe]
directory = "ldap://down.example"
"""), environ={})
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("probe", probe)])
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    # The global runtime's backends as before; of the tenants only acme, which is not ready.
    assert response.json() == {"ready": False, "backends": [
        {"backend": "directory", "ready": True},
        {"backend": "directory", "tenant": "acme", "ready": False,
         "reason": "service bind refused"}]}
    assert "down.example" not in response.text
    assert probe.calls == ["", "acme"]  # globex shares the global directory: probed once


@pytest.mark.parametrize("down", ["acme", "global"])
def test_readiness_tenants_report_lists_a_tenants_backend_but_answers_200(
        tmp_path: Path, down: str) -> None:
    """``[server] readiness_tenants = "report"``: acme's own directory being down is listed
    (and logged) but does not take the instance out; a global backend down still does."""
    probe = TenantProbe()
    table = "[tenants.acme.plugins.probe]" if down == "acme" else "[plugins.probe]"
    settings = load_settings(tenants_config(tmp_path, extra=f"""
{table}
directory = "ldap://down.example"
"""), environ={"ZENGINE_SERVER__READINESS_TENANTS": "report"})
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("probe", probe)])
    with TestClient(app) as client:
        response = client.get("/readyz")
    if down == "acme":
        assert response.status_code == 200
        assert response.json() == {"ready": True, "backends": [
            {"backend": "directory", "ready": True},
            {"backend": "directory", "tenant": "acme", "ready": False,
             "reason": "service bind refused"}]}
    else:
        assert response.status_code == 503
        assert response.json() == {"ready": False, "backends": [
            {"backend": "directory", "ready": False, "reason": "service bind refused"}]}


def test_readyz_probes_a_backend_tenants_share_once_and_names_no_tenant(
        tmp_path: Path) -> None:
    """Review of 61092d2: with a shared [plugins.probe] down, /readyz listed the global entry
    and one per tenant (every customer named) and probed it tenants + 1 times."""
    probe = TenantProbe()
    settings = load_settings(tenants_config(tmp_path, extra="""
[plugins.probe]
directory = "ldap://down.example"
"""), environ={})
    app = create_app(settings, load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("probe", probe)])
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "backends": [
        {"backend": "directory", "ready": False, "reason": "service bind refused"}]}
    assert probe.calls == [""]


def test_readyz_two_tenants_sharing_a_down_global_database_names_no_tenant(
        tmp_path: Path) -> None:
    path = tenants_config(tmp_path, extra="""
[plugins.sql]
url = "postgresql+psycopg://zengine:pw-sh4red@127.0.0.1:1/zengine"
connect_timeout = 1
""")
    app = create_app(load_settings(path, environ={}), load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("sql", zengine_sql)])
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "backends": [
        {"backend": "sql", "ready": False, "reason": "database unreachable"}]}
    assert "acme" not in response.text and "globex" not in response.text
    assert "pw-sh4red" not in response.text


def test_readyz_and_probe_fail_for_a_tenants_unreachable_database_naming_no_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only acme has a database ([tenants.acme.plugins.sql]); the global runtime and globex
    have none, so before every tenant was probed /readyz said ready."""
    path = tenants_config(tmp_path, extra="""
[tenants.acme.plugins.sql]
url = "postgresql+psycopg://zengine:pw-t3n4nt@127.0.0.1:1/acme"
connect_timeout = 1
""")
    app = create_app(load_settings(path, environ={}), load_entrypoints=False,
                     plugins=[*plugin_list(*BUILTINS), ("sql", zengine_sql)])
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "backends": [
        {"backend": "sql", "tenant": "acme", "ready": False, "reason": "database unreachable"}]}
    assert "pw-t3n4nt" not in response.text and "127.0.0.1" not in response.text
    # check-config --probe runs the same probes from the installed plugins (sql among them).
    assert cli.main(["check-config", "--probe", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "probe sql (tenant acme): NOT READY: database unreachable" in out, out
    assert "pw-t3n4nt" not in out + err
