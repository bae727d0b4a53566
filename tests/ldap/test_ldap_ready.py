"""The LDAP backend's zengine_readiness: a real slapd, the right and a wrong service password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.ldap.conftest import search_table
from tests.ldap.slapd import Slapd
from zengine.models import Readiness
from zengine.runtime import Runtime

pytestmark = pytest.mark.ldap
Build = Callable[[dict[str, Any]], Runtime]


def test_ldap_zengine_readiness_service_bind_works(slapd: Slapd, ldap_runtime: Build) -> None:
    runtime = ldap_runtime(search_table(slapd))
    assert runtime.hooks.readiness(runtime) == [Readiness("ldap", True)]


def test_ldap_zengine_readiness_wrong_service_password(slapd: Slapd,
                                                       ldap_runtime: Build) -> None:
    runtime = ldap_runtime(search_table(slapd, service_password="not-the-service-pw-3e"))
    [result] = runtime.hooks.readiness(runtime)
    assert (result.backend, result.ready, result.reason) == ("ldap", False,
                                                             "service bind refused")
    assert "cannot bind" in result.detail and "not-the-service-pw-3e" not in result.detail


def test_ldap_zengine_readiness_directory_down(ldap_runtime: Build, slapd: Slapd) -> None:
    runtime = ldap_runtime(search_table(slapd, servers=["ldap://127.0.0.1:1"]))
    [result] = runtime.hooks.readiness(runtime)
    assert (result.ready, result.reason) == (False, "directory unreachable")
    assert "127.0.0.1:1" in result.detail
