"""A real OpenLDAP slapd for the LDAP backend's tests, started from a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import trustme

import zengine_ldap
from tests.conftest import service_missing
from tests.ldap import schema
from tests.ldap.slapd import Slapd, missing_reason
from zengine.runtime import Runtime, build_runtime
from zengine.settings import Settings, settings_from_mapping

PROFILES: dict[str, dict[str, Any]] = {"office": {"SIP_transport_type": "TLS"},
                                       "mobile": {"SIP_transport_type": "UDP"}}


class SlapdFactory(Protocol):
    def __call__(self, name: str, cert_names: tuple[str, ...] = ...) -> Slapd: ...


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def slapd_factory(tmp_path_factory: pytest.TempPathFactory,
                  test_ca: trustme.CA) -> Iterator[SlapdFactory]:
    """Makes started slapd instances (each with its own database); all die at session end."""
    reason = missing_reason()
    instances: list[Slapd] = []

    def make(name: str, cert_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Slapd:
        if reason is not None:
            service_missing(f"slapd: {reason}")
        instance = Slapd(tmp_path_factory.mktemp(f"slapd-{name}"), test_ca, cert_names)
        instances.append(instance)
        instance.setup()
        instance.start()
        return instance

    yield make
    for instance in instances:
        instance.remove()


@pytest.fixture(scope="session")
def slapd(slapd_factory: SlapdFactory) -> Slapd:
    """The shared directory; tests must not stop it (outage tests make their own)."""
    return slapd_factory("main")


def search_table(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """``[plugins.ldap]`` for the OpenLDAP tree in search-then-bind mode, over StartTLS."""
    table: dict[str, Any] = {
        "servers": [server.url],
        "start_tls": True,
        "ca_file": str(server.ca_file),
        "connect_timeout": 1.0,
        "receive_timeout": 2,
        "retry_after": 1.0,
        "pool_size": 2,
        # The whole tree: people and contractors (where the ambiguous "twin" lives twice).
        "search_base": schema.BASE,
        "service_dn": schema.SERVICE_DN,
        "service_password": schema.SERVICE_PASSWORD,
        "attributes": {"sip_password": "sipPassword"},
        "domain": "sip.example.com",
        "group_search_base": f"ou=groups,{schema.BASE}",
        "group_profiles": [{"group": "sip-mobile", "profile": "mobile"},
                           {"group": f"cn=sip-office,ou=groups,{schema.BASE}",
                            "profile": "office"}],
    }
    table.update(overrides)
    return table


def direct_table(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """Direct bind with a DN template, no service account: reads use the user's own rights."""
    table = search_table(server, bind_mode="direct",
                         user_dn_template=f"uid={{username}},ou=people,{schema.BASE}",
                         search_base=None, search_filter=None,
                         service_dn=None, service_password=None)
    table.update(overrides)
    return {k: v for k, v in table.items() if v is not None}


def ad_table(server: Slapd, **overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "servers": [server.ldaps_url],
        "ca_file": str(server.ca_file),
        "connect_timeout": 1.0,
        "receive_timeout": 2,
        "preset": "active_directory",
        "search_base": schema.AD_BASE,
        "service_dn": schema.AD_SERVICE_DN,
        "service_password": schema.AD_SERVICE_PASSWORD,
        "attributes": {"sip_password": "extensionAttribute1"},
        "domain": "pbx.corp.example",
        "group_profiles": [{"group": "SIP Mobile", "profile": "mobile"},
                           {"group": f"CN=SIP Office,CN=Users,{schema.AD_BASE}",
                            "profile": "office"}],
    }
    table.update(overrides)
    return table


def make_settings(table: dict[str, Any], **top: Any) -> Settings:
    return settings_from_mapping({"profiles": PROFILES, "plugins": {"ldap": table}, **top},
                                 environ={}, base_dir=Path.cwd())


@pytest.fixture
def ldap_runtime() -> Iterator[Callable[[dict[str, Any]], Runtime]]:
    """Builds and starts a runtime with only the LDAP plugin; stopped after the test."""
    started: list[Runtime] = []

    def build(table: dict[str, Any]) -> Runtime:
        runtime = build_runtime(make_settings(table), load_entrypoints=False,
                                plugins=[("ldap", zengine_ldap)])
        runtime.start()
        started.append(runtime)
        return runtime

    yield build
    for runtime in started:
        runtime.stop()
