"""A tenant on its own directory (the real slapd) beside a tenant on a users file, with the
same username in both: the directory's alice and the file's alice never cross, and the LDAP
settings (servers, search base, mappings) come from the tenant's overlay alone."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

import zengine_guard
import zengine_ldap
from tests.conftest import runtime_of
from tests.ldap import schema
from tests.ldap.conftest import PROFILES, search_table
from tests.ldap.slapd import Slapd
from tests.tenants_kit import PASSWORDS, SIP_SECRET, users_file
from zengine.app import create_app
from zengine.runtime import Runtime
from zengine.settings import Settings, settings_from_mapping
from zengine.testing import plugin_list
from zengine_ldap.settings import LdapSettings

pytestmark = pytest.mark.ldap
LDAP_SIP_SECRET = "alice-sip-secret"


def settings(tmp_path: Path, slapd: Slapd) -> Settings:
    users_file(tmp_path / "acme-users.toml", "acme")
    return settings_from_mapping({
        "profiles": PROFILES,
        "passwords": {"time_cost": 1, "memory_kib": 64, "parallelism": 1},
        "auth": {"chain": ["static"], "failure_floor_ms": 0},
        "plugins": {"guard": {"lockout_threshold": 2}},
        "tenants": {
            "initech": {"hosts": ["prov.initech.example"],
                        "auth": {"chain": ["ldap"]},
                        "plugins": {"ldap": search_table(slapd)}},
            "acme": {"hosts": ["prov.acme.example"],
                     "plugins": {"static": {"users_file": "acme-users.toml"}}},
        },
    }, environ={}, base_dir=tmp_path)


def get(client: TestClient, host: str, password: str) -> httpx.Response:
    return client.get("/id.php", params={"username": "alice", "password": password},
                      headers={"host": host})


def ldap_servers(runtime: Runtime) -> tuple[str, ...]:
    config = runtime.plugin_configs["ldap"]
    assert isinstance(config, LdapSettings)
    return config.servers


def test_ldap_tenant_and_static_tenant_with_the_same_username(tmp_path: Path,
                                                              slapd: Slapd) -> None:
    app = create_app(settings(tmp_path, slapd), load_entrypoints=False, plugins=[
        *plugin_list("zoiper", "static"), ("ldap", zengine_ldap), ("guard", zengine_guard)])
    with TestClient(app) as client:
        directory = get(client, "prov.initech.example", schema.PASSWORDS["alice"])
        assert LDAP_SIP_SECRET in directory.text and SIP_SECRET["acme"] not in directory.text
        local = get(client, "prov.acme.example", PASSWORDS["acme"])
        assert SIP_SECRET["acme"] in local.text and LDAP_SIP_SECRET not in local.text
        # Each alice's password is wrong in the other tenant.
        assert "<error" in get(client, "prov.initech.example", PASSWORDS["acme"]).text
        assert "<error" in get(client, "prov.acme.example", schema.PASSWORDS["alice"]).text
        # The global settings have no directory at all: the tenant's overlay brought it.
        root = runtime_of(client)
        assert ldap_servers(root) == ()
        assert ldap_servers(root.tenants["initech"]) == (slapd.url,)
        assert ldap_servers(root.tenants["acme"]) == ()
        # Lock the directory's alice out; the file's alice is untouched.
        for n in range(3):
            get(client, "prov.initech.example", f"guess-{n}")
        assert get(client, "prov.initech.example",
                   schema.PASSWORDS["alice"]).status_code == 429
        assert SIP_SECRET["acme"] in get(client, "prov.acme.example", PASSWORDS["acme"]).text
