"""The verified-login cache on the SQL backend: a password change or a disable always wins."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL

import zengine_sql
from tests.sql.conftest import PASSWORD, sql_config
from tests.test_login_cache import Counted
from zengine.models import Credentials, Identity, ProvisionRequest, Rejected
from zengine.runtime import Runtime
from zengine_sql import admin, specs

REQUEST = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)


def login(runtime: Runtime, password: str) -> Identity | Rejected | None:
    result = runtime.hooks.authenticate(Credentials("carol", SecretStr(password)), REQUEST,
                                        runtime, ("sql",))
    return result  # type: ignore[return-value]


@pytest.fixture
def rt(own_db: URL, runtime_for: Callable[..., Runtime], password_hash: str) -> Runtime:
    runtime = runtime_for(sql_config(own_db), login_cache={"secret": "s" * 40})
    state = zengine_sql.get_state(runtime)
    assert state is not None
    admin.add_user(state, specs.UserSpec(username="carol", password_hash=password_hash))
    return runtime


def test_sql_hit_then_password_change(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(rt, monkeypatch)
    assert isinstance(login(rt, PASSWORD), Identity)
    assert isinstance(login(rt, PASSWORD), Identity)
    assert counted.calls == 1
    state = zengine_sql.get_state(rt)
    assert state is not None
    admin.set_password(state, "carol", "a new password")
    # The stored hash changed: the old password's entry cannot match any more.
    assert isinstance(login(rt, PASSWORD), Rejected)
    assert isinstance(login(rt, "a new password"), Identity)
    assert isinstance(login(rt, "a new password"), Identity)
    assert counted.calls == 3


def test_sql_disable_refuses_a_cached_login(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(rt, monkeypatch)
    assert isinstance(login(rt, PASSWORD), Identity)
    state = zengine_sql.get_state(rt)
    assert state is not None
    # The entry stays in place, to prove the disabled flag is read on a hit too.
    monkeypatch.setattr(state.logins, "forget", lambda username, **_: None)
    admin.set_enabled(state, "carol", False)
    result = login(rt, PASSWORD)
    assert isinstance(result, Rejected) and result.reason == "user disabled"
    assert counted.calls == 1


def test_sql_disable_forgets_the_entry(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    counted = Counted(rt, monkeypatch)
    login(rt, PASSWORD)
    state = zengine_sql.get_state(rt)
    assert state is not None
    admin.set_enabled(state, "carol", False)
    admin.set_enabled(state, "carol", True)
    assert isinstance(login(rt, PASSWORD), Identity)
    assert counted.calls == 2


def test_sql_password_changed_by_another_process_never_hits(
        rt: Runtime, own_db: URL, runtime_for: Callable[..., Runtime],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored hash is the cache's material: a password changed where this server's cache
    is not told (another process, its own in-process cache: the CLI, the portal, the PBX's
    tools) stops the old password's entry from matching. The forget that set_password also
    does reaches only the changing process's cache, so it cannot be what this proves."""
    counted = Counted(rt, monkeypatch)
    assert isinstance(login(rt, PASSWORD), Identity)
    assert isinstance(login(rt, PASSWORD), Identity)
    assert counted.calls == 1
    elsewhere = runtime_for(sql_config(own_db), login_cache={"secret": "s" * 40})
    assert elsewhere.logins.entries is not rt.logins.entries
    state = zengine_sql.get_state(elsewhere)
    assert state is not None
    admin.set_password(state, "carol", "changed elsewhere")
    assert isinstance(login(rt, PASSWORD), Rejected)
    assert isinstance(login(rt, "changed elsewhere"), Identity)
    assert counted.calls == 3


def test_sql_set_password_drops_the_entry(rt: Runtime) -> None:
    """set_password forgets the user in its own cache (the shared one, on Redis, for every
    server): nothing of the old password is left behind to expire on its own."""
    assert isinstance(login(rt, PASSWORD), Identity)
    slot = rt.logins.slot("carol")
    assert rt.logins.entries.get(slot) is not None
    state = zengine_sql.get_state(rt)
    assert state is not None
    admin.set_password(state, "carol", "a new password")
    assert rt.logins.entries.get(slot) is None
