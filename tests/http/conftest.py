"""The CRM under hypercorn over TLS (one per session), and the config that points zengine at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.http.crm import TOKEN, Crm, Running, serving


@pytest.fixture(scope="session")
def crm_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def crm_ca_file(crm_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crm-ca") / "ca.pem"
    crm_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def crm_state() -> Crm:
    return Crm()


@pytest.fixture(scope="session")
def crm_server(crm_state: Crm, crm_ca: trustme.CA,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    leaf = crm_ca.issue_cert("127.0.0.1", "localhost")
    yield from serving(crm_state, tls=leaf, tmp=tmp_path_factory.mktemp("crm-tls"))


@pytest.fixture
def crm(crm_state: Crm, crm_server: Running) -> Iterator[Crm]:
    crm_state.reset()
    yield crm_state
    crm_state.reset()


def http_table(base: str, ca_file: Path, **overrides: Any) -> dict[str, Any]:
    """A ``[plugins.http]`` table for the CRM, as docs/backends/http.md's example has it."""
    table: dict[str, Any] = {
        "bearer_token": TOKEN,
        "ca_file": str(ca_file),
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "deadline": 3.0,
        "retry_backoff": 0.01,
        "login": {"url": f"{base}/api/login",
                  "json": {"user": "{username}", "secret": "{password}"}},
        "identity": {"display_name": "customer.name", "profile": "plan", "groups": "groups",
                     "attributes": {"customer_id": "customer.id"}},
        "accounts": {"url": f"{base}/api/customers/{{customer_id}}/lines", "items": "lines",
                     "fields": {"ident": "id", "sip_username": "sip.user",
                                "sip_password": "sip.secret", "domain": "domain",
                                "name": "label", "transport": "transport",
                                "overrides": "zoiper"}},
        "lookup": {"url": f"{base}/api/users/{{username}}"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(table.get(key), dict):
            table[key] = {**table[key], **value}
        else:
            table[key] = value
    return table


def config(table: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"auth": {"chain": ["http"], "failure_floor_ms": 0},
            "profiles": {"gold": {"SIP_dtmf_style": "SIP_info_numeric"}},
            "plugins": {"http": table}, **extra}
