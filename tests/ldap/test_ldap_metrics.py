"""The LDAP backend reports every user bind it spends (``password.bind``) and its cache lookups,
against the real slapd: what ``zengine_password_verifications_total{method="ldap_bind"}``
counts."""

from __future__ import annotations

from pydantic import SecretStr

import zengine_ldap
from tests.ldap import schema
from tests.ldap.conftest import direct_table, make_settings, search_table
from tests.ldap.slapd import Slapd
from zengine import hookimpl
from zengine.models import Credentials, Observation, ProvisionRequest
from zengine.runtime import Runtime, build_runtime

REQUEST = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="192.0.2.1",
                           credentials=None, version_raw=None)


class Binds:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []

    @hookimpl
    def zengine_observe(self, observation: Observation) -> None:
        if observation.name in ("password.bind", "login_cache"):
            self.seen.append((observation.name, observation.result, observation.backend))


def runtime_for(table: dict[str, object], binds: Binds) -> Runtime:
    runtime = build_runtime(make_settings(table), load_entrypoints=False,
                            plugins=[("ldap", zengine_ldap), ("binds", binds)])
    runtime.start()
    return runtime


def attempt(runtime: Runtime, binds: Binds, username: str, password: str) -> list[object]:
    before = len(binds.seen)
    credentials = Credentials(username=username, password=SecretStr(password))
    runtime.hooks.authenticate(credentials, REQUEST, runtime, ("ldap",))
    return list(binds.seen[before:])


def test_zengine_observe_counts_ldap_binds_real_and_dummy(slapd: Slapd) -> None:
    binds = Binds()
    runtime = runtime_for(search_table(slapd), binds)
    try:
        good = schema.PASSWORDS["alice"]
        assert attempt(runtime, binds, "alice", good) == [
            ("login_cache", "miss", "ldap"), ("password.bind", "real", "ldap")]
        # The verified-login cache spares the bind, not the search.
        assert attempt(runtime, binds, "alice", good) == [("login_cache", "hit", "ldap")]
        assert attempt(runtime, binds, "alice", "not-it") == [
            ("login_cache", "miss", "ldap"), ("password.bind", "real", "ldap")]
        # An unknown user costs the equalising bind, counted as the dummy it is.
        assert attempt(runtime, binds, "nobody-here", "x") == [("password.bind", "dummy", "ldap")]
    finally:
        runtime.stop()


def test_zengine_observe_counts_ldap_binds_in_direct_mode(slapd: Slapd) -> None:
    binds = Binds()
    runtime = runtime_for(direct_table(slapd), binds)
    try:
        # Direct mode binds before it can know whether the user exists: always "real".
        assert attempt(runtime, binds, "alice", schema.PASSWORDS["alice"]) == [
            ("password.bind", "real", "ldap")]
        assert attempt(runtime, binds, "nobody-here", "x") == [("password.bind", "real", "ldap")]
    finally:
        runtime.stop()
