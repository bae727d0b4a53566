"""The verified-login cache on the LDAP backend, against a real slapd: the bind is the check, so
a password changed in the directory is only noticed when the entry expires (TTL only, 300 s by
default, as docs/security.md and docs/configuration.md say)."""

from __future__ import annotations

import ldap3
import pytest
from pydantic import SecretStr

import zengine_ldap
import zengine_ldap.auth
from tests.ldap import schema
from tests.ldap.conftest import SlapdFactory, make_settings, search_table
from tests.ldap.slapd import Slapd
from zengine.logincache import LocalEntries
from zengine.models import Credentials, Identity, ProvisionRequest, Rejected
from zengine.runtime import build_runtime

REQUEST = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="192.0.2.1",
                           credentials=None, version_raw=None)
ALICE_DN = f"uid=alice,ou=people,{schema.BASE}"


def change_own_password(url: str, dn: str, old: str, new: str) -> None:
    """What a user does in the directory (self may write userPassword), behind zengine's back."""
    conn = ldap3.Connection(ldap3.Server(url), user=dn, password=old, auto_bind=True)
    try:
        changes = {"userPassword": [(ldap3.MODIFY_REPLACE, [schema.ssha(new)])]}
        assert conn.modify(dn, changes)  # type: ignore[no-untyped-call]
    finally:
        conn.unbind()


def test_a_directory_password_change_is_noticed_when_the_entry_expires(
        slapd_factory: SlapdFactory) -> None:
    # A directory of its own: this test changes alice's password.
    server = slapd_factory("login-cache")
    settings = make_settings(search_table(server), login_cache={"secret": "l" * 40})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("ldap", zengine_ldap)])
    runtime.start()
    try:
        entries = runtime.logins.entries
        assert isinstance(entries, LocalEntries)
        now = [1000.0]
        entries._clock = lambda: now[0]  # the LRU's clock, so the TTL passes without sleeping
        binds: list[str] = []
        backend = runtime.state["ldap"]
        real_bind = backend.bind_pool.run

        def counted(call: object) -> object:
            binds.append("bind")
            return real_bind(call)

        backend.bind_pool.run = counted

        def login(password: str) -> object:
            return runtime.hooks.authenticate(Credentials("alice", SecretStr(password)),
                                              REQUEST, runtime, ("ldap",))

        old, new = schema.PASSWORDS["alice"], "alice-new-pw-9"
        assert isinstance(login(old), Identity) and len(binds) == 1
        change_own_password(server.url, ALICE_DN, old, new)
        # Within the TTL the old password is still served from the cache (no bind): the
        # documented limit of a bind-checked backend.
        now[0] += 299
        assert isinstance(login(old), Identity) and len(binds) == 1
        # Past the default 300 s the directory decides again.
        now[0] += 2
        assert isinstance(login(old), Rejected) and len(binds) == 2
        assert isinstance(login(new), Identity) and len(binds) == 3
        assert isinstance(login(new), Identity) and len(binds) == 3
    finally:
        runtime.stop()


def test_ldap_backend_ttl_from_config_bounds_the_entry(slapd_factory: SlapdFactory) -> None:
    server = slapd_factory("login-cache-ttl")
    settings = make_settings(search_table(server),
                             login_cache={"secret": "l" * 40, "backend_ttl": {"ldap": 30}})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("ldap", zengine_ldap)])
    runtime.start()
    try:
        entries = runtime.logins.entries
        assert isinstance(entries, LocalEntries)
        now = [1000.0]
        entries._clock = lambda: now[0]
        password = schema.PASSWORDS["bob"]
        credentials = Credentials("bob", SecretStr(password))
        assert isinstance(runtime.hooks.authenticate(credentials, REQUEST, runtime, ("ldap",)),
                          Identity)
        (expiry,) = [until for _, until in entries._items.values()]
        assert expiry == 1030.0
    finally:
        runtime.stop()


def test_a_cached_login_of_an_account_disabled_since_is_refused(
        slapd: Slapd, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry is read on every login, a hit too: an account disabled in the directory after
    its password was cached is refused without a bind, its cached password notwithstanding."""
    settings = make_settings(search_table(slapd), login_cache={"secret": "l" * 40})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("ldap", zengine_ldap)])
    runtime.start()
    try:
        credentials = Credentials("carol", SecretStr(schema.PASSWORDS["carol"]))
        assert isinstance(runtime.hooks.authenticate(credentials, REQUEST, runtime, ("ldap",)),
                          Identity)
        slot = runtime.logins.slot("carol")
        assert runtime.logins.entries.get(slot) is not None
        # As if the directory's account control now said "disabled" (the test tree's people
        # carry no such attribute, and the service account may not write it).
        monkeypatch.setattr(zengine_ldap.auth, "is_disabled", lambda entry, config: True)
        result = runtime.hooks.authenticate(credentials, REQUEST, runtime, ("ldap",))
        assert result == Rejected("ldap", "account disabled")
    finally:
        runtime.stop()
