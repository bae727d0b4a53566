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
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar
from urllib.parse import quote, unquote

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

    def verification(self, who: Who, now: float) -> Verdict: ...

    def fail(self, who: Who, digest: str, now: float) -> float: ...

    def succeed(self, who: Who, now: float) -> None: ...

    def entries(self, now: float) -> list[Entry]: ...

    def clear(self, name: str | None, tenant: str | None) -> int: ...


def backoff(count: int, config: GuardSettings) -> float:
    """Seconds of lockout after ``count`` distinct failures (0 below the threshold)."""
    if count < config.lockout_threshold:
        return 0.0
    steps = min(count - config.lockout_threshold, 32)
    return float(min(config.lockout_base * 2 ** steps, config.lockout_max))


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

    def verification(self, who: Who, now: float) -> Verdict:
        """One more slow verification for the tenant; past the flood limit the login is
        refused and no longer counts as in flight (its result will never come)."""
        c = self.config
        with self._lock:
            start, count = self._flood.get(who.tenant, (now, 0))
            if now - start >= c.flood_window:
                start, count = now, 0
            if count >= c.tenant_max_verifications:
                self._settle(who, now)
                return Verdict("limited", "flood", start + c.flood_window - now)
            self._flood.put(who.tenant, (start, count + 1))
            return OK

    def _settle(self, who: Who, now: float) -> None:
        pending, since = self._pending.pop((who.tenant, who.user), (0, now))
        if pending > 1 and now - since <= PENDING_TTL:
            self._pending.put((who.tenant, who.user), (pending - 1, since))

    def fail(self, who: Who, digest: str, now: float) -> float:
        c = self.config
        with self._lock:
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


# -- Redis --------------------------------------------------------------------------------

_BACKOFF = """
local function backoff(count, threshold, base, max)
  if count < threshold then return 0 end
  local steps = math.min(count - threshold, 32)
  return math.min(base * 2 ^ steps, max)
end
"""

# Locks hold the time they end (ms); their TTL only collects them. KEYS: acct, ulock, lock,
# fam, addr, (optional) a key to read when the login may go ahead.
# ARGV: now_ms, addr, window_ms, hard_cap, familiar_ms, address_max, (unused),
# (unused), threshold, pending_ttl_ms
CHECK = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
local function until_of(key)
  local v = redis.call('GET', key)
  if v then return tonumber(v) end
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'locked', 'hard_cap', tonumber(oldest[2]) + window - now}
end
local u = until_of(KEYS[2])
if u > now then return {'locked', 'user_address', u - now} end
local seen = redis.call('ZSCORE', KEYS[4], ARGV[2])
local familiar = seen and tonumber(seen) > now - tonumber(ARGV[5])
u = until_of(KEYS[3])
if u > now and not familiar then return {'locked', 'account', u - now} end
local pending_key = KEYS[3] .. ':pending'
redis.call('ZREMRANGEBYSCORE', pending_key, '-inf', now - tonumber(ARGV[10]))
local pending = redis.call('ZCARD', pending_key)
local room = math.max(1, tonumber(ARGV[9]) - redis.call('ZCARD', KEYS[1]))
if not familiar and pending >= room then
  return {'locked', 'account', tonumber(ARGV[10])}
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[6]) then
  local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  return {'limited', 'address', tonumber(oldest[2]) + window - now}
end
local seq = redis.call('INCR', pending_key .. ':seq')
redis.call('PEXPIRE', pending_key .. ':seq', tonumber(ARGV[10]))
redis.call('ZADD', pending_key, now, seq)
redis.call('PEXPIRE', pending_key, tonumber(ARGV[10]))
if KEYS[6] then
  -- The login cache's entry for this user, read in the same round trip (see check_reading).
  local entry = redis.call('GET', KEYS[6])
  if entry then return {'ok', '', 0, 1, entry} end
  return {'ok', '', 0, 0}
end
return {'ok', '', 0}
"""

# KEYS: flood (a prefix: one counter per flood window), lock (its ":pending" set).
# ARGV: now_ms, flood_max, flood_ms. Refused: the login is no longer in flight.
VERIFICATION = """
local now = tonumber(ARGV[1])
local flood_ms = tonumber(ARGV[3])
local bucket = math.floor(now / flood_ms)
local flood = KEYS[1] .. ':' .. bucket
local c = tonumber(redis.call('GET', flood) or '0')
if c >= tonumber(ARGV[2]) then
  redis.call('ZPOPMIN', KEYS[2] .. ':pending')
  return {'limited', 'flood', (bucket + 1) * flood_ms - now}
end
redis.call('INCR', flood)
if c == 0 then redis.call('PEXPIRE', flood, 2 * flood_ms) end
return {'ok', '', 0}
"""

# KEYS: acct, addr, lock, ulock.  ARGV: now_ms, addr, user, digest, window_ms, threshold,
# base_ms, max_ms
FAIL = _BACKOFF + """
redis.call('ZPOPMIN', KEYS[3] .. ':pending')
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[3] .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local added = redis.call('ZADD', KEYS[1], 'NX', now, ARGV[2] .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
if added == 0 then return 0 end
local threshold, base, max = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local function lock(key, ms)
  local current = tonumber(redis.call('GET', key) or '0')
  if now + ms > current then redis.call('SET', key, now + ms, 'PX', ms + 60000) end
end
local locked = 0
local n = redis.call('ZCARD', KEYS[1])
local ms = backoff(n, threshold, base, max)
if ms > 0 then
  lock(KEYS[3], ms)
  locked = ms
end
local prefix = ARGV[2] .. '|'
local mine = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then mine = mine + 1 end
end
ms = backoff(mine, threshold, base, max)
if ms > 0 then
  lock(KEYS[4], ms)
  locked = math.max(locked, ms)
end
return locked
"""

# KEYS: acct, ulock, lock (its ":pending" counter), fam.  ARGV: now_ms, addr, familiar_ms
SUCCEED = """
redis.call('ZPOPMIN', KEYS[3] .. ':pending')
local prefix = ARGV[2] .. '|'
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then redis.call('ZREM', KEYS[1], member) end
end
redis.call('DEL', KEYS[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
return 1
"""


def q(part: str) -> str:
    """One key component, with ``:`` and ``|`` escaped so that components never run together."""
    return quote(part, safe="")


class RedisState:
    """The same algorithm as :class:`MemoryState`, each step one server-side Lua script, so
    every worker and instance sharing the Redis sees one lockout."""

    kind = "redis"

    def __init__(self, config: GuardSettings, client: object) -> None:
        import redis

        self.config = config
        assert isinstance(client, redis.Redis)  # noqa: S101 - built by the guard
        self.client = client
        self.prefix = f"{config.key_prefix}guard:"
        self._check = self.client.register_script(CHECK)
        self._verification = self.client.register_script(VERIFICATION)
        self._fail = self.client.register_script(FAIL)
        self._succeed = self.client.register_script(SUCCEED)

    def _k(self, tenant: str, *parts: str) -> str:
        return self.prefix + q(tenant) + ":" + ":".join(parts)

    def check(self, who: Who, now: float) -> Verdict:
        return self.check_reading(who, now, None)[0]

    def check_reading(self, who: Who, now: float,
                      read: str | None) -> tuple[Verdict, bytes | None]:
        """:meth:`check`, and when the login may go ahead the value of the Redis key ``read``
        (the verified-login cache's entry of this user), in the same round trip."""
        c = self.config
        t, u, a = who.tenant, q(who.user), q(who.addr)
        keys = [self._k(t, "acct", u), self._k(t, "ulock", u, a), self._k(t, "lock", u),
                self._k(t, "fam", u), self._k(t, "addr", a)]
        reply = self._check(
            keys=keys if read is None else [*keys, read],
            args=[int(now * 1000), who.addr, c.window * 1000, c.hard_cap,
                  c.familiar_days * 86400 * 1000, c.address_max_failures, 0, 0,
                  c.lockout_threshold, int(PENDING_TTL * 1000)])
        action, reason, ms = reply[:3]
        value = reply[4] if len(reply) > 4 and isinstance(reply[4], bytes) else None
        return _verdict(action, reason, ms), value

    def verification(self, who: Who, now: float) -> Verdict:
        c = self.config
        action, reason, ms = self._verification(
            keys=[self._k(who.tenant, "flood"), self._k(who.tenant, "lock", q(who.user))],
            args=[int(now * 1000), c.tenant_max_verifications, c.flood_window * 1000])
        return _verdict(action, reason, ms)

    def fail(self, who: Who, digest: str, now: float) -> float:
        c = self.config
        t, u, a = who.tenant, q(who.user), q(who.addr)
        ms = self._fail(
            keys=[self._k(t, "acct", u), self._k(t, "addr", a), self._k(t, "lock", u),
                  self._k(t, "ulock", u, a)],
            args=[int(now * 1000), who.addr, who.user, digest, c.window * 1000,
                  c.lockout_threshold, c.lockout_base * 1000, c.lockout_max * 1000])
        return int(ms) / 1000

    def succeed(self, who: Who, now: float) -> None:
        t, u, a = who.tenant, q(who.user), q(who.addr)
        self._succeed(keys=[self._k(t, "acct", u), self._k(t, "ulock", u, a),
                            self._k(t, "lock", u), self._k(t, "fam", u)],
                      args=[int(now * 1000), who.addr, self.config.familiar_days * 86400 * 1000])

    def _scan(self, pattern: str) -> list[str]:
        return [k.decode() if isinstance(k, bytes) else k
                for k in self.client.scan_iter(match=pattern, count=500)]

    def _split(self, key: str) -> tuple[str, str, list[str]]:
        tenant, kind, *rest = key[len(self.prefix):].split(":")
        return unquote(tenant), kind, [unquote(part) for part in rest]

    def entries(self, now: float) -> list[Entry]:
        out = []
        horizon = int((now - self.config.window) * 1000)
        glob = _glob(self.prefix)
        for key in sorted(self._scan(glob + "*:acct:*")):
            tenant, _, (user,) = self._split(key)
            failures = int(self.client.zcount(key, horizon, "+inf"))
            until = self.client.get(self._k(tenant, "lock", q(user)))
            left = max(0.0, float(until or 0) / 1000 - now)
            if failures or left > 0:
                out.append(Entry(tenant, "user", user, failures, left))
        for key in sorted(self._scan(glob + "*:addr:*")):
            tenant, _, (addr,) = self._split(key)
            failures = int(self.client.zcount(key, horizon, "+inf"))
            if failures:
                out.append(Entry(tenant, "address", addr, failures, 0.0))
        return out

    def clear(self, name: str | None, tenant: str | None) -> int:
        glob = _glob(self.prefix) + (_glob(q(tenant)) if tenant is not None else "*") + ":"
        if name is None:
            keys = [k for k in self._scan(glob + "*")
                    if self._split(k)[1] in ("acct", "addr", "lock", "ulock", "flood")]
            return int(self.client.delete(*keys)) if keys else 0
        n = _glob(q(name))
        keys = [*self._scan(glob + f"acct:{n}"), *self._scan(glob + f"lock:{n}"),
                *self._scan(glob + f"lock:{n}:pending*"),
                *self._scan(glob + f"addr:{n}"), *self._scan(glob + f"ulock:{n}:*"),
                *self._scan(glob + f"ulock:*:{n}")]
        removed = int(self.client.delete(*keys)) if keys else 0
        # An address: its failures inside every account too.
        for key in self._scan(glob + "acct:*"):
            raw: list[bytes] = list(self.client.zrange(key, 0, -1))  # type: ignore[arg-type]
            members = [m for m in raw if m.decode().startswith(f"{name}|")]
            if members:
                removed += int(self.client.zrem(key, *members))
        return removed


def _verdict(action: object, reason: object, ms: object) -> Verdict:
    action = action.decode() if isinstance(action, bytes) else action
    reason = reason.decode() if isinstance(reason, bytes) else reason
    if action not in ("locked", "limited"):
        return OK
    return Verdict("locked" if action == "locked" else "limited", str(reason),
                   int(ms) / 1000)  # type: ignore[call-overload]


def _glob(text: str) -> str:
    """Escape Redis glob characters in a literal key part."""
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)
