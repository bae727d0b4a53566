"""Every lockout and limit rule, on the in-process store and on the real Redis (``make_state``
is parametrised over both). Time is passed in, so back-off and windows are tested exactly."""

from __future__ import annotations

from collections.abc import Callable

from zengine_guard.settings import GuardSettings
from zengine_guard.state import GuardState, Who, backoff

T0 = 1_800_000_000.0
ALICE = Who("", "alice", "198.51.100.1")
Make = Callable[..., GuardState]


def fail_n(state: GuardState, who: Who, n: int, now: float = T0, start: int = 0) -> float:
    locked = 0.0
    for i in range(start, start + n):
        locked = state.fail(who, f"digest{i:04d}", now)
    return locked


def test_backoff_doubles_from_base_to_max() -> None:
    config = GuardSettings()
    assert [backoff(n, config) for n in (9, 10, 11, 12, 15, 16, 40)] == [
        0, 60, 120, 240, 1920, 3600, 3600]


def test_distinct_wrong_passwords_lock_after_threshold(make_state: Make) -> None:
    state = make_state()
    assert fail_n(state, ALICE, 9) == 0
    assert state.check(ALICE, T0).action == "ok"
    assert fail_n(state, ALICE, 1, start=9) == 60
    verdict = state.check(ALICE, T0 + 1)
    assert verdict.action == "locked"
    assert 58 <= verdict.retry_after <= 60
    # Another unfamiliar address is locked out too: it is the account that is locked.
    other = Who("", "alice", "203.0.113.50")
    assert state.check(other, T0 + 1).action == "locked"
    assert state.check(other, T0 + 1).reason == "account"
    # After the lock, the next distinct failure doubles it.
    assert state.check(ALICE, T0 + 61).action == "ok"
    assert state.fail(ALICE, "digest-new", T0 + 61) == 120
    assert state.check(ALICE, T0 + 61 + 100).action == "locked"


def test_one_stale_password_counts_once(make_state: Make) -> None:
    state = make_state()
    for _ in range(50):
        assert state.fail(ALICE, "stale-phone-password", T0) == 0
    assert state.check(ALICE, T0).action == "ok"


def test_unknown_usernames_are_counted_and_locked_alike(make_state: Make) -> None:
    state = make_state()
    ghost = Who("", "no-such-user", ALICE.addr)
    fail_n(state, ghost, 10)
    assert state.check(ghost, T0).action == "locked"


def test_failures_leave_the_window(make_state: Make) -> None:
    state = make_state(window=600)
    fail_n(state, ALICE, 9)
    # Ten minutes later the nine are forgotten: one more does not lock.
    assert state.fail(ALICE, "late", T0 + 601) == 0
    assert state.check(ALICE, T0 + 601).action == "ok"


def test_familiar_address_is_not_locked_out_by_someone_elses_guessing(make_state: Make) -> None:
    state = make_state()
    home = Who("", "alice", "192.0.2.10")
    state.succeed(home, T0 - 100)  # the real user logged in from here before
    attacker = Who("", "alice", "203.0.113.66")
    fail_n(state, attacker, 12)
    assert state.check(attacker, T0).action == "locked"
    assert state.check(home, T0).action == "ok"
    # Her own failures from home still lock her home address (per account and address).
    fail_n(state, home, 10, start=100)
    assert state.check(home, T0).reason == "user_address"


def test_success_clears_that_addresss_failures_only(make_state: Make) -> None:
    state = make_state()
    home = Who("", "alice", "192.0.2.10")
    attacker = Who("", "alice", "203.0.113.66")
    fail_n(state, home, 5)
    fail_n(state, attacker, 4, start=50)
    state.succeed(home, T0)
    # Home's five are gone: five more from anywhere stay below ten for the account ...
    fail_n(state, attacker, 5, start=60)
    assert state.check(attacker, T0).action == "ok"
    # ... while the attacker's own continue to count.
    assert state.fail(attacker, "one-more", T0) == 60


def test_hard_cap_refuses_even_familiar_addresses(make_state: Make) -> None:
    state = make_state(hard_cap=20, lockout_max=1)
    home = Who("", "alice", "192.0.2.10")
    state.succeed(home, T0 - 100)
    for i in range(20):
        state.fail(Who("", "alice", f"203.0.113.{i}"), f"d{i}", T0 + i)
    verdict = state.check(home, T0 + 30)
    assert (verdict.action, verdict.reason) == ("locked", "hard_cap")
    # Until the oldest failure leaves the hour.
    assert 3560 <= verdict.retry_after <= 3570


def test_address_limit_stops_credential_stuffing(make_state: Make) -> None:
    state = make_state(address_max_failures=30)
    for i in range(30):
        state.fail(Who("", f"user{i}", "198.51.100.200"), "Summer2026!", T0)
    verdict = state.check(Who("", "user99", "198.51.100.200"), T0)
    assert (verdict.action, verdict.reason) == ("limited", "address")
    # Another address is not affected; nor is each account (one failure each).
    assert state.check(Who("", "user99", "198.51.100.201"), T0).action == "ok"


def test_flood_limit_per_tenant_counts_verifications_only(make_state: Make) -> None:
    state = make_state(tenant_max_verifications=5, flood_window=10)
    # Checks alone (what a verified-login cache hit costs) never use the budget.
    for i in range(20):
        assert state.check(Who("acme", f"u{i}", f"10.0.0.{i}"), T0).action == "ok"
    verdicts = [state.verification(Who("acme", f"u{i}", f"10.0.0.{i}"), T0)
                for i in range(7)]
    assert [v.action for v in verdicts] == ["ok"] * 5 + ["limited"] * 2
    assert verdicts[-1].reason == "flood" and 0 < verdicts[-1].retry_after <= 10
    # Another tenant has its own budget; the next window a fresh one.
    assert state.verification(Who("other", "u", "10.0.0.1"), T0).action == "ok"
    assert state.verification(Who("acme", "u", "10.0.0.1"), T0 + 10).action == "ok"


def test_flood_refusal_gives_the_in_flight_place_back(make_state: Make) -> None:
    """A login refused at its verification never sends a result: it must not keep holding
    one of the account's in-flight places (or a flood would lock the account)."""
    state = make_state(tenant_max_verifications=1, lockout_threshold=2)
    assert state.check(ALICE, T0).action == "ok"
    assert state.verification(ALICE, T0).action == "ok"
    state.fail(ALICE, "digest-a", T0)
    for _ in range(5):
        assert state.check(ALICE, T0).action == "ok"
        assert state.verification(ALICE, T0).action == "limited"


def test_flood_refusal_of_a_login_without_a_mark_leaves_the_others(make_state: Make) -> None:
    """A login settled by its check holds no in-flight mark (``in_flight=False``): refused by
    the flood limit, it must not remove another login's, which still holds its place."""
    state = make_state(tenant_max_verifications=1, lockout_threshold=2)
    assert state.check(ALICE, T0).action == "ok"  # another login, in flight
    assert state.verification(Who("", "bob", "10.0.0.2"), T0).action == "ok"  # flood spent
    assert state.verification(ALICE, T0, in_flight=False).action == "limited"
    # Alice's one mark is still there: one more check fits under the threshold, not two.
    assert state.check(ALICE, T0).action == "ok"
    assert state.check(ALICE, T0).action == "locked"


def test_tenants_never_share_counters(make_state: Make) -> None:
    state = make_state()
    fail_n(state, Who("acme", "alice", ALICE.addr), 10)
    assert state.check(Who("acme", "alice", ALICE.addr), T0).action == "locked"
    assert state.check(Who("globex", "alice", ALICE.addr), T0).action == "ok"


def test_entries_and_clear_by_user_and_address(make_state: Make) -> None:
    state = make_state()
    fail_n(state, ALICE, 10)
    fail_n(state, Who("", "bob", "203.0.113.7"), 3)
    entries = {(e.kind, e.name): e for e in state.entries(T0)}
    assert entries[("user", "alice")].failures == 10
    assert entries[("user", "alice")].locked_for > 50
    assert entries[("address", "203.0.113.7")].failures == 3
    assert state.clear("alice", None) > 0
    assert state.check(ALICE, T0).action == "ok"
    # Clearing an address removes its failures inside accounts too.
    assert state.clear("203.0.113.7", None) > 0
    assert not [e for e in state.entries(T0) if e.name in ("bob", "203.0.113.7")]
    fail_n(state, ALICE, 10)
    assert state.clear(None, None) > 0
    assert state.entries(T0) == []


def test_usernames_with_key_separators_stay_apart(make_state: Make) -> None:
    state = make_state()
    tricky = Who("", "a:b|c*", "2001:db8::1")
    fail_n(state, tricky, 10)
    assert state.check(tricky, T0).action == "locked"
    assert state.check(Who("", "a", "2001:db8::1"), T0).action == "ok"
    assert [e.name for e in state.entries(T0) if e.kind == "user"] == ["a:b|c*"]


def test_guesses_in_flight_count_toward_the_threshold(make_state: Make) -> None:
    """Fifty concurrent guesses: only as many start a verification as could still be under the
    threshold; a result (or the in-flight timeout) gives the place back."""
    state = make_state()
    fail_n(state, ALICE, 7)
    verdicts = [state.check(ALICE, T0).action for _ in range(5)]
    assert verdicts == ["ok", "ok", "ok", "locked", "locked"]
    state.succeed(Who("", "alice", "192.0.2.99"), T0)  # one result in: one place back
    assert state.check(ALICE, T0).action == "ok"
    # Results that never come stop holding places after the in-flight timeout.
    assert state.check(ALICE, T0 + 11).action == "ok"


def test_in_process_store_stays_bounded_under_unlimited_usernames_and_addresses() -> None:
    """memory_max_entries caps every table: 5x as many distinct usernames and addresses as
    the cap (failures, lockouts, successes, checks left in flight) leave at most the cap of
    keys in each, and the newest state still holds (the last user stays locked)."""
    from zengine_guard.memory import FAMILIAR_PER_ACCOUNT, MemoryState

    cap = 100
    state = MemoryState(GuardSettings(memory_max_entries=cap, lockout_threshold=1))
    for i in range(5 * cap):
        who = Who(f"t{i % 7}", f"user{i}", f"2001:db8::{i:x}")
        assert state.check(who, T0).action == "ok"
        state.check(Who("", f"in-flight{i}", f"192.0.2.{i % 250}"), T0)  # never a result
        state.fail(who, f"digest{i}", T0)
        state.succeed(Who("", f"phone{i}", "198.51.100.1"), T0)
        state.succeed(Who("", "bob", f"198.51.100.{i % 250}"), T0)
        state.verification(Who(f"tenant{i}", "x", "192.0.2.1"), T0)
    sizes = state.sizes()
    # Each table reached the cap (the loop wrote 5x as many keys) and none passed it.
    assert all(cap - 1 <= n <= cap for n in sizes.values()), sizes
    last = Who(f"t{(5 * cap - 1) % 7}", f"user{5 * cap - 1}", f"2001:db8::{5 * cap - 1:x}")
    assert state.check(last, T0).action == "locked"
    # One account's familiar addresses are bounded too: the most recent ones are kept.
    assert len(state._familiar[("", "bob")]) == FAMILIAR_PER_ACCOUNT
    assert f"198.51.100.{(5 * cap - 1) % 250}" in state._familiar[("", "bob")]


def test_expired_state_is_swept_from_the_front_of_each_table() -> None:
    from zengine_guard.memory import MemoryState

    config = GuardSettings(lockout_threshold=1, lockout_base=60, window=3600)
    state = MemoryState(config)
    for i in range(1000):
        state.fail(Who("", f"old{i}", "192.0.2.1"), f"d{i}", T0)
    # Past the window and every lock: the next sweep (every 1,024 failures) drops them all.
    for i in range(24):
        state.fail(Who("", f"new{i}", "192.0.2.2"), f"d{i}", T0 + 7200)
    sizes = state.sizes()
    assert sizes["acct"] == 24 and sizes["addr"] == 1 and sizes["locks"] <= 48, sizes
