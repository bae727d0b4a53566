"""The guard's counters in this process's memory, under one lock (see :mod:`zengine_guard.state`
for the algorithm)."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from zengine_guard.settings import GuardSettings
from zengine_guard.state import OK, PENDING_TTL, Entry, Verdict, Who, backoff

K = TypeVar("K")
V = TypeVar("V")
#: Familiar addresses remembered per account (the most recent ones).
FAMILIAR_PER_ACCOUNT = 64


class Lru(OrderedDict[K, V], Generic[K, V]):
    """A table of at most ``cap`` keys; writing a key makes it the newest, and the oldest
    written goes first. An attacker with unlimited usernames and addresses can then only
    push out old entries, never grow the process."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.cap:
            self.popitem(last=False)

    def slot(self, key: K, make: Callable[[], V]) -> V:
        """The value under ``key`` (made if missing), marked as just written."""
        value = self.get(key)
        if value is None:
            value = make()
        self.put(key, value)
        return value


class MemoryState:
    """The algorithm on dictionaries, under one lock: right for one worker process. Every
    table holds at most ``memory_max_entries`` keys (see :class:`Lru`)."""

    kind = "memory"

    def __init__(self, config: GuardSettings, clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self._lock = threading.Lock()
        cap = config.memory_max_entries
        self._acct: Lru[tuple[str, str], dict[str, float]] = Lru(cap)
        self._addr: Lru[tuple[str, str], dict[str, float]] = Lru(cap)
        # (t, user, addr or "") -> until
        self._locks: Lru[tuple[str, str, str], float] = Lru(cap)
        self._familiar: Lru[tuple[str, str], dict[str, float]] = Lru(cap)
        self._flood: Lru[str, tuple[float, int]] = Lru(cap)
        #: Checks let through whose result is not in yet, per account: (count, last change).
        self._pending: Lru[tuple[str, str], tuple[int, float]] = Lru(cap)
        self._writes = 0

    def _fresh(self, table: dict[str, float], now: float) -> dict[str, float]:
        horizon = now - self.config.window
        for member in [m for m, ts in table.items() if ts <= horizon]:
            del table[member]
        return table

    def check(self, who: Who, now: float) -> Verdict:
        c = self.config
        with self._lock:
            acct = self._fresh(self._acct.get((who.tenant, who.user), {}), now)
            if len(acct) >= c.hard_cap:
                return Verdict("locked", "hard_cap", min(acct.values()) + c.window - now)
            until = self._locks.get((who.tenant, who.user, who.addr), 0.0)
            if until > now:
                return Verdict("locked", "user_address", until - now)
            seen = self._familiar.get((who.tenant, who.user), {}).get(who.addr)
            familiar = seen is not None and seen > now - c.familiar_days * 86400
            until = self._locks.get((who.tenant, who.user, ""), 0.0)
            if until > now and not familiar:
                return Verdict("locked", "account", until - now)
            pending, since = self._pending.get((who.tenant, who.user), (0, now))
            if now - since > PENDING_TTL:
                pending = 0
            if not familiar and pending >= max(1, c.lockout_threshold - len(acct)):
                # Guesses already in flight would reach the threshold (past it: one at a
                # time): do not start more verifications for this account.
                return Verdict("locked", "account", PENDING_TTL)
            addr = self._fresh(self._addr.get((who.tenant, who.addr), {}), now)
            if len(addr) >= c.address_max_failures:
                return Verdict("limited", "address", min(addr.values()) + c.window - now)
            self._pending.put((who.tenant, who.user), (pending + 1, now))
            return OK

    def verification(self, who: Who, now: float, *, in_flight: bool = True) -> Verdict:
        """One more slow verification for the tenant; past the flood limit the login is
        refused and no longer counts as in flight (its result will never come).
        ``in_flight=False``: its check left no mark here (settled on Redis, this the
        fallback), so none is removed: it would be another login's."""
        c = self.config
        with self._lock:
            start, count = self._flood.get(who.tenant, (now, 0))
            if now - start >= c.flood_window:
                start, count = now, 0
            if count >= c.tenant_max_verifications:
                if in_flight:
                    self._settle(who, now)
                return Verdict("limited", "flood", start + c.flood_window - now)
            self._flood.put(who.tenant, (start, count + 1))
            return OK

    def _settle(self, who: Who, now: float) -> None:
        pending, since = self._pending.pop((who.tenant, who.user), (0, now))
        if pending > 1 and now - since <= PENDING_TTL:
            self._pending.put((who.tenant, who.user), (pending - 1, since))

    def fail(self, who: Who, digest: str, now: float, *, in_flight: bool = True) -> float:
        c = self.config
        with self._lock:
            if in_flight:
                self._settle(who, now)
            self._sweep(now)
            self._addr.slot((who.tenant, who.addr), dict).setdefault(f"{who.user}|{digest}", now)
            acct = self._fresh(self._acct.slot((who.tenant, who.user), dict), now)
            member = f"{who.addr}|{digest}"
            if member in acct:
                return 0.0  # the same wrong password again: counted once
            acct[member] = now
            locked = 0.0
            account_lock = backoff(len(acct), c)
            if account_lock:
                key = (who.tenant, who.user, "")
                self._locks.put(key, max(self._locks.get(key, 0.0), now + account_lock))
                locked = account_lock
            mine = sum(1 for m in acct if m.startswith(f"{who.addr}|"))
            pair_lock = backoff(mine, c)
            if pair_lock:
                key = (who.tenant, who.user, who.addr)
                self._locks.put(key, max(self._locks.get(key, 0.0), now + pair_lock))
                locked = max(locked, pair_lock)
            return locked

    def succeed(self, who: Who, now: float) -> None:
        with self._lock:
            self._settle(who, now)
            acct = self._acct.get((who.tenant, who.user), {})
            for member in [m for m in acct if m.startswith(f"{who.addr}|")]:
                del acct[member]
            self._locks.pop((who.tenant, who.user, who.addr), None)
            if self.config.familiar_days:
                seen = self._familiar.slot((who.tenant, who.user), dict)
                seen.pop(who.addr, None)
                seen[who.addr] = now
                for old in list(seen)[:-FAMILIAR_PER_ACCOUNT]:
                    del seen[old]

    def _sweep(self, now: float) -> None:
        """Every 1024 failures drop what has expired, so memory follows the live state."""
        self._writes += 1
        if self._writes % 1024:
            return
        # The tables are in write order, so what expired is at the front: stop at the first
        # live key (a full scan of a full table, under the lock, would stall every login).
        for table in (self._acct, self._addr):
            while table:
                key, members = next(iter(table.items()))
                if self._fresh(members, now):
                    break
                del table[key]
        while self._pending:
            key, (_, since) = next(iter(self._pending.items()))
            if now - since <= PENDING_TTL:
                break
            del self._pending[key]
        horizon = now - self.config.familiar_days * 86400
        while self._familiar:
            key, seen = next(iter(self._familiar.items()))
            if max(seen.values(), default=horizon) > horizon:
                break
            del self._familiar[key]
        # Lock ends grow with back-off, so they are not in write order: collect them one
        # bounded slice at a time instead.
        for lock in [k for k, until in itertools.islice(self._locks.items(), 4096)
                     if until <= now]:
            del self._locks[lock]

    def sizes(self) -> dict[str, int]:
        """Keys per table: what ``memory_max_entries`` bounds."""
        with self._lock:
            return {"acct": len(self._acct), "addr": len(self._addr), "locks": len(self._locks),
                    "familiar": len(self._familiar), "flood": len(self._flood),
                    "pending": len(self._pending)}

    def entries(self, now: float) -> list[Entry]:
        with self._lock:
            out = []
            for (tenant, user), acct in self._acct.items():
                failures = len(self._fresh(acct, now))
                until = self._locks.get((tenant, user, ""), 0.0)
                if failures or until > now:
                    out.append(Entry(tenant, "user", user, failures, max(0.0, until - now)))
            for (tenant, addr), table in self._addr.items():
                failures = len(self._fresh(table, now))
                if failures:
                    out.append(Entry(tenant, "address", addr, failures, 0.0))
            return out

    def clear(self, name: str | None, tenant: str | None) -> int:
        def ours(t: str) -> bool:
            return tenant is None or t == tenant

        with self._lock:
            removed = 0
            for key in [k for k in self._acct if ours(k[0]) and name in (None, k[1])]:
                del self._acct[key]
                removed += 1
            for key in [k for k in self._addr if ours(k[0]) and name in (None, k[1])]:
                del self._addr[key]
                removed += 1
            for lock in [k for k in self._locks if ours(k[0]) and name in (None, k[1], k[2])]:
                del self._locks[lock]
                removed += 1
            if name is not None:
                # An address: its failures inside every account too.
                for (t, _), acct in self._acct.items():
                    if ours(t):
                        for member in [m for m in acct if m.startswith(f"{name}|")]:
                            del acct[member]
                            removed += 1
            return removed
