"""The guard's counters: one algorithm, in this process's memory or atomically in Redis.

Per (tenant, username) ``acct`` holds the *distinct* failures of the window as members
``<address>|<digest>`` (a phone re-sending one stale password counts once). From it:

* ``n`` distinct failures >= ``lockout_threshold`` lock the account for
  ``min(lockout_base * 2**(n - threshold), lockout_max)`` seconds, for every address that never
  logged in successfully (addresses that did are "familiar" and are not locked out by
  someone else's guessing);
* the failures of one address (the members with its prefix) lock that (account, address)
  pair the same way, familiar or not;
* ``n >= hard_cap`` refuses every address until the oldest failure leaves the window.

Per (tenant, address) ``addr`` holds distinct ``<username>|<digest>`` failures (credential
stuffing); per tenant ``flood`` counts logins that spend a slow password verification (a
verified-login cache miss: ``verification``, asked by the core's
``zengine_login_verification``) per flood window; cached logins never count.
A success removes that address's failures for that user and makes the address familiar.

The same algorithm twice: :class:`zengine_guard.memory.MemoryState` (one process) and
:class:`zengine_guard.redis_state.RedisState` (its steps as Lua scripts,
:mod:`zengine_guard.scripts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from zengine_guard.settings import GuardSettings

Action = Literal["ok", "locked", "limited"]


@dataclass(frozen=True)
class Verdict:
    action: Action
    #: ``account``, ``user_address``, ``hard_cap``, ``address`` or ``flood``.
    reason: str = ""
    retry_after: float = 0.0


OK = Verdict("ok")
#: Seconds a check let through counts as "in flight" when its result never comes (the pool
#: was full, a backend failed): it then stops holding back further attempts.
PENDING_TTL = 10.0


@dataclass(frozen=True)
class Who:
    tenant: str
    user: str
    addr: str


@dataclass(frozen=True)
class Entry:
    """One line of ``zengine lockouts list``."""

    tenant: str
    kind: str  # "user" or "address"
    name: str
    failures: int
    locked_for: float


class GuardState(Protocol):
    kind: str

    def check(self, who: Who, now: float) -> Verdict: ...

    def verification(self, who: Who, now: float, *, in_flight: bool = True) -> Verdict:
        """The flood limit; refused, the login's in-flight mark goes (``in_flight=False``:
        its check left none)."""
        ...

    def fail(self, who: Who, digest: str, now: float, *, in_flight: bool = True) -> float:
        """Record a failure; ``in_flight=False``: its check left no in-flight mark."""
        ...

    def succeed(self, who: Who, now: float) -> None: ...

    def entries(self, now: float) -> list[Entry]: ...

    def clear(self, name: str | None, tenant: str | None) -> int: ...


def backoff(count: int, config: GuardSettings) -> float:
    """Seconds of lockout after ``count`` distinct failures (0 below the threshold)."""
    if count < config.lockout_threshold:
        return 0.0
    steps = min(count - config.lockout_threshold, 32)
    return float(min(config.lockout_base * 2 ** steps, config.lockout_max))
