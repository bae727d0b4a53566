"""The token store and service on the embedded SQLite file: format, digests only, states,
revocation, replay window, purge, file mode."""

from __future__ import annotations

import re
import sqlite3
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.tokens.conftest import AuditSink
from zengine.errors import LoginFailed, NoAccounts
from zengine.runtime import Runtime
from zengine_tokens.api import TokenService, token_service
from zengine_tokens.store import digest


def _service(runtime: Runtime) -> TokenService:
    return token_service(runtime)


def _dump(path: Path) -> str:
    """Every value of every row of every table, as text."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}"))
    finally:
        conn.close()


def test_token_is_long_random_urlsafe_and_stored_only_as_its_digest(
        runtime_for: Callable[..., Runtime], tmp_path: Path, sink: AuditSink) -> None:
    service = _service(runtime_for())
    issued = [service.issue("alice", revoke_older=False) for _ in range(20)]
    for item in issued:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", item.token)  # 32 bytes = 256 bits
        assert item.token not in repr(item)
    assert len({item.token for item in issued}) == 20
    dump = _dump(tmp_path / "tokens.db")
    for item in issued:
        assert item.token not in dump
        assert digest(item.token) in dump
    assert stat.S_IMODE((tmp_path / "tokens.db").stat().st_mode) == 0o600
    assert len(sink.named("token.issued")) == 20
    assert all(item.token not in repr(e) for e in sink.events for item in issued)


def test_defaults_and_row_fields(runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for())
    issued = service.issue("alice", account="alice-office", actor="test")
    assert issued.max_uses == 1 and issued.account == "alice-office" and issued.tenant == ""
    [info] = service.list("alice")
    assert info.id == issued.id and info.state == "active" and info.uses == 0
    assert info.expires - info.created == timedelta(hours=72)
    assert info.issued_by == "test" and info.purpose == "link"
    assert issued.expires == info.expires


def test_redeem_once_then_used_and_replay_only_from_the_same_address(
        runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for())
    issued = service.issue("alice")
    first = service.redeem(issued.token, "192.0.2.1")
    assert first.outcome == "used" and first.row is not None and first.row.username == "alice"
    again = service.redeem(issued.token, "192.0.2.1")
    assert again.outcome == "replay"
    other = service.redeem(issued.token, "192.0.2.99")
    assert other.outcome == "refused" and other.reason == "used"
    [info] = service.list("alice")
    assert info.state == "used" and info.uses == 1 and info.last_used_addr == "192.0.2.1"
    # Past the window the retry is refused too.
    later = service.clock() + timedelta(seconds=61)
    service.clock = lambda: later
    assert service.redeem(issued.token, "192.0.2.1").reason == "used"


def test_replay_window_zero_turns_replays_off(runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for({"replay_window": 0}))
    issued = service.issue("alice")
    assert service.redeem(issued.token, "a").outcome == "used"
    assert service.redeem(issued.token, "a").reason == "used"


def test_refusal_reasons(runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for())
    assert service.redeem("x" * 43, "a").reason == "unknown"
    assert service.redeem("not/url+safe", "a").reason == "malformed"
    assert service.redeem("x" * 500, "a").reason == "malformed"
    assert service.redeem("", "a").reason == "malformed"
    revoked = service.issue("alice", account="alice-home")
    assert service.revoke(revoked.id) is not None
    assert service.redeem(revoked.token, "a").reason == "revoked"
    expired = service.issue("alice", account="alice-office", ttl=timedelta(minutes=5))
    now = service.clock()
    service.clock = lambda: now + timedelta(minutes=6)
    assert service.redeem(expired.token, "a").reason == "expired"
    assert [i.state for i in service.list("alice")] == ["expired", "revoked"]


def test_several_uses(runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for({"replay_window": 0}))
    issued = service.issue("bob", uses=3)
    assert [service.redeem(issued.token, "a").outcome for _ in range(4)] == [
        "used", "used", "used", "refused"]


def test_issuing_revokes_older_tokens_of_the_same_account_only(
        runtime_for: Callable[..., Runtime], sink: AuditSink) -> None:
    service = _service(runtime_for())
    office = service.issue("alice", account="alice-office")
    home = service.issue("alice", account="alice-home")
    every = service.issue("alice")
    bob = service.issue("bob")
    newer = service.issue("alice", account="alice-office")
    kept = service.issue("alice", account="alice-office", revoke_older=False)
    states = {i.id: i.state for i in service.list()}
    assert states[office.id] == "revoked"
    assert states[home.id] == states[every.id] == states[bob.id] == "active"
    assert states[newer.id] == states[kept.id] == "active"
    assert service.redeem(office.token, "a").reason == "revoked"
    assert "revoked_older=1" in (sink.named("token.issued")[4].detail or "")


def test_revoke_user_and_tenants_are_separate(runtime_for: Callable[..., Runtime],
                                             sink: AuditSink) -> None:
    service = _service(runtime_for())
    a1 = service.issue("alice", account="alice-office")
    a2 = service.issue("alice", account="alice-home")
    other = service.issue("alice", tenant="acme", check_user=False)
    assert service.revoke_user("alice") == 2
    assert service.revoke_user("alice") == 0
    assert {i.state for i in service.list("alice")} == {"revoked"}
    assert [i.id for i in service.list("alice", tenant="acme")] == [other.id]
    assert service.revoke(other.id) is None  # another tenant's id
    assert service.redeem(a1.token, "a").reason == service.redeem(a2.token, "a").reason
    assert service.redeem(other.token, "a").outcome == "used"
    assert sink.named("token.revoked")[0].detail == "user count=2 actor=cli"


def test_purge_deletes_expired_only(runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for())
    short = service.issue("alice", account="alice-office", ttl=timedelta(minutes=1))
    long = service.issue("alice", account="alice-home")
    now = service.clock()
    service.clock = lambda: now + timedelta(minutes=2)
    assert service.purge() == 1
    assert [i.id for i in service.list()] == [long.id]
    assert short.id != long.id


def test_issue_checks_the_user_and_account(runtime_for: Callable[..., Runtime]) -> None:
    service = _service(runtime_for())
    with pytest.raises(LoginFailed, match="nobody"):
        service.issue("nobody")
    with pytest.raises(NoAccounts) as info:
        service.issue("alice", account="bob-1")
    assert "no account 'bob-1'" in info.value.public_message
    with pytest.raises(ValueError, match="uses"):
        service.issue("alice", uses=0)
    with pytest.raises(ValueError, match="ttl"):
        service.issue("alice", ttl=timedelta(0))
    assert service.list() == []


def test_existing_store_file_is_made_private(runtime_for: Callable[..., Runtime],
                                             tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    _service(runtime_for()).list()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_is_not_opened_until_used(runtime_for: Callable[..., Runtime],
                                        tmp_path: Path) -> None:
    runtime_for()
    assert not (tmp_path / "tokens.db").exists()


def test_zengine_readiness_of_the_token_store(runtime_for: Callable[..., Runtime],
                                              tmp_path: Path) -> None:
    runtime = runtime_for()
    [ready] = runtime.hooks.readiness(runtime)
    assert (ready.backend, ready.ready) == ("tokens", True)
    assert not (tmp_path / "tokens.db").exists()  # probing creates nothing
    _service(runtime).list()
    assert token_service(runtime).readiness().ready
    (tmp_path / "plain-file").write_text("x")
    blocked = runtime_for({"sqlite_path": str(tmp_path / "plain-file" / "sub" / "t.db")})
    probe = token_service(blocked).readiness()
    assert not probe.ready and probe.reason == "token store not writable"
    assert "plain-file is not a writable directory" in probe.detail
