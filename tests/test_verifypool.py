"""The verification pool serves waiting verifications fairly across client addresses
(zengine.verifypool): deterministic, with gates instead of timings."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx
import pytest

from zengine.app import create_app
from zengine.errors import Overloaded
from zengine.runtime import Runtime
from zengine.testing import plugin_list
from zengine.verifying import NO_LANE, Lane, current_lane, lane_for, login_in_progress
from zengine.verifypool import VerifyPool

A: Lane = ("", "203.0.113.66")
B: Lane = ("", "192.0.2.10")


class Recorder:
    """Jobs that note their name when they run; ``gate`` holds the first one."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def blocker(self, name: str) -> Callable[[], str]:
        def job() -> str:
            self.order.append(name)
            self.started.set()
            assert self.gate.wait(10), "the test never opened the gate"
            return name
        return job

    def job(self, name: str) -> Callable[[], str]:
        def job() -> str:
            self.order.append(name)
            return name
        return job


@contextmanager
def pool(size: int, queue: int) -> Iterator[tuple[VerifyPool, Recorder]]:
    verify_pool, recorder = VerifyPool(size, queue), Recorder()
    try:
        yield verify_pool, recorder
    finally:
        recorder.gate.set()
        verify_pool.close()


def settle(futures: list[Future[str]]) -> None:
    for future in futures:
        future.result(10)


def test_a_later_address_runs_before_another_address_backlog() -> None:
    with pool(1, 16) as (p, rec):
        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        backlog = [p.submit(rec.job(f"a{i}"), A) for i in range(2, 6)]
        other = p.submit(rec.job("b1"), B)
        assert p.waiting == 5
        rec.gate.set()
        settle([first, *backlog, other])
    assert rec.order == ["a1", "b1", "a2", "a3", "a4", "a5"]


def test_two_backlogs_take_turns() -> None:
    with pool(1, 16) as (p, rec):
        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        futures = [p.submit(rec.job(f"a{i}"), A) for i in range(2, 5)]
        futures += [p.submit(rec.job(f"b{i}"), B) for i in range(1, 4)]
        rec.gate.set()
        settle([first, *futures])
    assert rec.order == ["a1", "b1", "a2", "b2", "a3", "b3", "a4"]


def test_one_address_alone_gets_the_whole_pool_in_order() -> None:
    """Carrier-grade NAT: every phone behind one address is served, with every slot."""
    with pool(2, 16) as (p, rec):
        both = threading.Barrier(2, timeout=10)

        def together(name: str) -> Callable[[], str]:
            def job() -> str:
                rec.order.append(name)
                both.wait()  # fails (BrokenBarrierError) unless both slots run at once
                assert rec.gate.wait(10)
                return name
            return job

        running = [p.submit(together("n1"), A), p.submit(together("n2"), A)]
        queued = [p.submit(rec.job(f"n{i}"), A) for i in range(3, 9)]
        rec.gate.set()
        settle([*running, *queued])
    # Two threads run the rest, so their order of finishing is theirs; that one lane's
    # backlog keeps its order is shown with one slot above (a2 ... a5).
    assert sorted(rec.order[:2]) == ["n1", "n2"]
    assert sorted(rec.order[2:]) == [f"n{i}" for i in range(3, 9)]


def test_a_full_queue_refuses_the_busy_address_not_the_other() -> None:
    with pool(1, 3) as (p, rec):
        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        queued = [p.submit(rec.job(f"a{i}"), A) for i in range(2, 5)]
        # The busy address's next one is refused at once ...
        with pytest.raises(Overloaded) as caught:
            p.submit(rec.job("a5"), A)
        assert caught.value.retry_after == 2
        # ... another address's takes the place of the busy address's newest.
        other = p.submit(rec.job("b1"), B)
        assert p.in_flight == 1 + 3
        with pytest.raises(Overloaded):
            queued[-1].result(10)
        rec.gate.set()
        settle([first, other, *queued[:-1]])
    assert rec.order == ["a1", "b1", "a2", "a3"]


def test_equal_addresses_keep_first_come_first_served_when_full() -> None:
    """Many addresses with one login each: the newcomer is the one refused, no one pushed."""
    with pool(1, 2) as (p, rec):
        first = p.submit(rec.blocker("x"), ("", "198.51.100.1"))
        assert rec.started.wait(10)
        queued = [p.submit(rec.job(f"y{i}"), ("", f"198.51.100.{i}")) for i in (2, 3)]
        with pytest.raises(Overloaded):
            p.submit(rec.job("late"), ("", "198.51.100.4"))
        rec.gate.set()
        settle([first, *queued])
    assert rec.order == ["x", "y2", "y3"]


def test_lanes_are_forgotten_when_empty() -> None:
    with pool(1, 4) as (p, rec):
        first = p.submit(rec.blocker("a"), A)
        assert rec.started.wait(10)
        queued = [p.submit(rec.job(f"n{i}"), ("", f"10.0.0.{i}")) for i in range(4)]
        assert len(p.lanes()) == 5
        rec.gate.set()
        settle([first, *queued])
        for i in range(300):  # many addresses, one after another
            p.run(lambda: None, ("", f"10.1.{i // 250}.{i % 250}"))
        assert p.lanes() == set()
        assert p.in_flight == 0


def test_an_error_in_a_job_reaches_its_caller_and_frees_the_slot() -> None:
    def boom() -> None:
        raise ValueError("boom")

    with pool(1, 1) as (p, _):
        with pytest.raises(ValueError, match="boom"):
            p.run(boom, A)
        assert p.run(lambda: 7, A) == 7
        assert p.lanes() == set()


def test_the_lane_comes_from_the_login_in_progress() -> None:
    with pool(1, 1) as (p, rec):
        with login_in_progress(lambda: None, lane_for("t1", "192.0.2.7")):
            held = p.submit(rec.blocker("held"))
        assert rec.started.wait(10)
        assert p.lanes() == {("t1", "192.0.2.7")}
        rec.gate.set()
        held.result(10)
        # Outside a login (operator tools): one lane of its own.
        p.run(lambda: None)
        assert current_lane() == NO_LANE


@pytest.mark.parametrize(("address", "lane"), [
    ("192.0.2.7", ("t", "192.0.2.7")),
    ("2001:db8:cafe:1::17", ("t", "2001:db8:cafe:1::/64")),
    ("2001:db8:cafe:1:ffff::9", ("t", "2001:db8:cafe:1::/64")),
    ("::ffff:10.0.0.1", ("t", "10.0.0.1")),
    ("cli", ("t", "cli")),
    ("", ("t", "")),
])
def test_lane_for(address: str, lane: Lane) -> None:
    assert lane_for("t", address) == lane


# -- through the pipeline ----------------------------------------------------------------

def _app(**server: Any) -> Any:
    from tests.conftest import EXAMPLE_CONFIG
    from zengine.settings import ServerSettings, load_settings

    base = load_settings(EXAMPLE_CONFIG, environ={"ZENGINE_PASSWORDS__POOL_SIZE": "1",
                                                  "ZENGINE_LOGIN_CACHE__ENABLED": "false"})
    settings = dataclasses.replace(base, server=ServerSettings(trusted_proxies=("127.0.0.1",),
                                                               **server))
    return create_app(settings, load_entrypoints=False,
                      plugins=plugin_list("zoiper", "static", "urls", "guard"))


def test_unknown_user_and_wrong_password_queue_in_the_same_lane() -> None:
    from starlette.testclient import TestClient

    app = _app()
    lanes: list[Lane] = []
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        runtime: Runtime = app.state.runtime
        original = runtime.passwords.pool.submit

        def spy(fn: Callable[[], Any], lane: Lane | None = None) -> Future[Any]:
            lanes.append(current_lane())
            return original(fn, lane)

        runtime.passwords.pool.submit = spy  # type: ignore[method-assign]
        for user in ("alice", "nobody-at-all"):
            answer = client.get("/id.php", params={"u": user, "p": "not-it"},
                                headers={"X-Forwarded-For": "198.51.100.23"})
            assert answer.status_code == 200 and b"<error" in answer.content
    assert lanes == [("", "198.51.100.23"), ("", "198.51.100.23")]


def test_over_real_http_a_login_from_another_address_overtakes_a_burst() -> None:
    """Guesses from one address wait for a held verification slot; the real user's login,
    sent after them from another address, is verified right after the held one."""
    from tests.http.crm import run

    app = _app()
    order: list[str] = []
    gate = threading.Event()
    running = run(app)
    try:
        runtime: Runtime = app.state.runtime
        pool = runtime.passwords.pool
        original = runtime.passwords._verify

        def spy(target: str, password: str) -> bool:
            order.append(password)
            return original(target, password)

        runtime.passwords._verify = spy  # type: ignore[method-assign]
        # The attacker's address holds the only slot.
        held = pool.submit(lambda: gate.wait(30), ("", "203.0.113.66"))
        results: dict[str, int] = {}

        def login(user: str, password: str, address: str) -> None:
            answer = httpx.get(f"{running.url}/id.php", params={"u": user, "p": password},
                               headers={"X-Forwarded-For": address}, timeout=60)
            results[password] = answer.status_code

        def queued(count: int) -> None:
            for _ in range(2000):  # bounded: the requests are on their way
                if pool.waiting >= count:
                    return
                threading.Event().wait(0.01)
            raise AssertionError(f"{pool.waiting} waiting, expected {count}")

        threads = [threading.Thread(target=login, args=("alice", f"guess{i}", "203.0.113.66"))
                   for i in range(4)]
        for thread in threads:
            thread.start()
        queued(4)
        home = threading.Thread(target=login, args=("alice", "wonderland", "192.0.2.10"))
        home.start()
        queued(5)
        gate.set()
        for thread in (*threads, home):
            thread.join(60)
        assert held.result(10)
    finally:
        gate.set()
        running.stop()
    assert order[0] == "wonderland", order
    assert sorted(order[1:]) == [f"guess{i}" for i in range(4)]
    assert results == {"wonderland": 200, **{f"guess{i}": 200 for i in range(4)}}


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
def test_verification_threads_run_niced() -> None:
    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = nice_here()
    niced, plain = VerifyPool(1, 1, nice=10), VerifyPool(1, 1)
    try:
        assert niced.run(nice_here, A) == min(19, base + 10)
        assert plain.run(nice_here, A) == base
        # The caller's own thread is left alone.
        assert nice_here() == base
    finally:
        niced.close()
        plain.close()


def test_passwords_pool_takes_the_nice_setting() -> None:
    from zengine.passwords import Passwords, PasswordSettings

    assert Passwords(PasswordSettings()).pool.nice == 10
    assert Passwords(PasswordSettings(pool_nice=0)).pool.nice == 0


def test_an_address_that_comes_later_starts_at_the_virtual_time() -> None:
    """A lane that arrives while another's backlog is being served starts at the tag of the
    verification started last, not at 0: it takes turns with the backlog instead of running
    its whole burst first (which would starve a lane busy since long before)."""
    with pool(1, 16) as (p, rec):
        later: list[Future[str]] = []

        def a3() -> str:
            rec.order.append("a3")
            later.extend(p.submit(rec.job(f"b{i}"), B) for i in range(1, 4))
            return "a3"

        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        backlog = [p.submit(rec.job("a2"), A), p.submit(a3, A),
                   *(p.submit(rec.job(f"a{i}"), A) for i in range(4, 7))]
        rec.gate.set()
        settle([first, *backlog])
        settle(later)
    assert rec.order == ["a1", "a2", "a3", "b1", "a4", "b2", "a5", "b3", "a6"]


def test_one_shot_addresses_cannot_starve_a_backlogged_lane() -> None:
    """Review of 9234e6a: every new address joined the round being served, so a stream of
    addresses with one verification each (an IPv6 /48's /64 lanes) kept a backlogged lane's
    second login waiting for good (b2 ran after x0 ... x20). Now a round closes to newcomers
    once one that joined it starts: b2 runs in the next round, after x0 only."""
    with pool(1, 16) as (p, rec):
        chained: list[Future[str]] = []
        done = threading.Event()

        def chain(i: int) -> Callable[[], str]:
            def job() -> str:
                rec.order.append(f"x{i}")
                if i < 20:  # the next address arrives while this one's runs
                    chained.append(p.submit(chain(i + 1), ("", f"198.51.100.{i + 1}")))
                else:
                    done.set()
                return f"x{i}"
            return job

        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        futures = [p.submit(rec.job("b1"), B), p.submit(rec.job("b2"), B),
                   p.submit(chain(0), ("", "198.51.100.0"))]
        rec.gate.set()
        settle([first, *futures])
        assert done.wait(10)
        settle(chained)
    assert rec.order == ["a1", "b1", "x0", "b2", *(f"x{i}" for i in range(1, 21))]


C: Lane = ("", "198.51.100.7")
D: Lane = ("", "198.51.100.8")


def test_a_full_queue_pushes_out_the_one_that_came_last_among_equal_tags() -> None:
    """b2 and c2 have the same tag; c2 came last, so it is the one that would run last."""
    with pool(1, 4) as (p, rec):
        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        b1, c1, b2, c2 = (p.submit(rec.job(n), lane)
                          for n, lane in (("b1", B), ("c1", C), ("b2", B), ("c2", C)))
        d1 = p.submit(rec.job("d1"), D)  # tag 0: room is made for it
        with pytest.raises(Overloaded):
            c2.result(10)
        rec.gate.set()
        settle([first, b1, c1, b2, d1])
    assert rec.order == ["a1", "b1", "c1", "d1", "b2"]


def test_a_pushed_out_lane_gets_the_victims_tag_back() -> None:
    """c2 pushed out: C's next verification takes c2's tag (as if c2 had never come), so it
    is ahead of B's later one and that one makes room for it when the queue is full."""
    with pool(1, 4) as (p, rec):
        later: dict[str, Future[str]] = {}

        def b1() -> str:
            rec.order.append("b1")
            later["b3"] = p.submit(rec.job("b3"), B)  # tag 2: fills the queue
            later["c3"] = p.submit(rec.job("c3"), C)  # c2's tag 1: b3 makes room
            return "b1"

        first = p.submit(rec.blocker("a1"), A)
        assert rec.started.wait(10)
        queued = [p.submit(b1, B), p.submit(rec.job("c1"), C), p.submit(rec.job("b2"), B)]
        c2 = p.submit(rec.job("c2"), C)
        queued.append(p.submit(rec.job("d1"), D))  # pushes c2 out
        with pytest.raises(Overloaded):
            c2.result(10)
        rec.gate.set()
        settle([first, *queued])
        assert later["c3"].result(10) == "c3"
        with pytest.raises(Overloaded):
            later["b3"].result(10)
    assert rec.order == ["a1", "b1", "c1", "d1", "b2", "c3"]


def test_a_caller_has_its_answer_only_once_its_slot_is_free() -> None:
    """One slot, no queue: at the moment a verification's answer is set (its callback), the
    pool already counts it done and takes the next one. Answered before its slot was given
    back, a login right after the last one was refused as if that one still ran; tests that
    read in_flight or lanes() right after an answer went red under load."""
    with pool(1, 0) as (p, _rec):
        gate = threading.Event()
        seen: list[object] = []
        following: list[Future[int]] = []

        def at_answer(_done: Future[bool]) -> None:  # in the pool's thread, as it is set
            seen.extend([p.in_flight, p.lanes()])
            try:
                following.append(p.submit(lambda: 2, A))
            except Overloaded:
                seen.append("refused")

        first = p.submit(lambda: gate.wait(10), A)
        first.add_done_callback(at_answer)
        gate.set()
        assert first.result(10) is True
        assert following and following[0].result(10) == 2, seen
        assert seen == [0, set()]


def test_a_failure_in_the_accounting_still_answers_the_caller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer is set after the slot's accounting; were that ever to raise (a bug), the
    caller would have waited for ever on its future."""
    verify_pool = VerifyPool(1, 1)

    def broken(_job: object) -> None:
        raise RuntimeError("accounting bug")

    monkeypatch.setattr(verify_pool, "_finish", broken)
    try:
        assert verify_pool.submit(lambda: "verified").result(timeout=10) == "verified"
    finally:
        monkeypatch.undo()
        verify_pool.close()
