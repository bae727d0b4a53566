"""The guard's counters in Redis: the algorithm of :mod:`zengine_guard.state`, each step one
server-side script (:mod:`zengine_guard.scripts`)."""

from __future__ import annotations

from urllib.parse import quote, unquote

from zengine_guard.scripts import CHECK, FAIL, SUCCEED, VERIFICATION
from zengine_guard.settings import GuardSettings
from zengine_guard.state import OK, PENDING_TTL, Entry, Verdict, Who

#: A settled login (:meth:`RedisState.check_reading`) does not refresh its address's
#: familiarity: only one whose address was refreshed within this share of ``familiar_days``
#: settles (30 days: refreshed within the last day), so an address stays familiar at least
#: 29/30 of ``familiar_days`` after its last success, and nothing is written for a login
#: before its password is checked.
FAMILIAR_REFRESH = 1 / 30


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

    def check_reading(self, who: Who, now: float, read: str | None,
                      tag: bytes = b"") -> tuple[Verdict, bytes | None, bool]:
        """:meth:`check`, and when the login may go ahead the value of the Redis key ``read``
        (the verified-login cache's entry of this user), in the same round trip; and whether
        the login is *settled*: ``tag`` (the password's, :meth:`LoginCache.tag`) is the
        entry's and a success would change nothing a later check reads (no failures of this
        address; the address familiar, refreshed within :data:`FAMILIAR_REFRESH` of
        ``familiar_days``). A settled login leaves no in-flight mark and owes no
        :meth:`succeed`; if it fails after all, :meth:`fail` with ``in_flight=False``."""
        c = self.config
        t, u, a = who.tenant, q(who.user), q(who.addr)
        keys = [self._k(t, "acct", u), self._k(t, "ulock", u, a), self._k(t, "lock", u),
                self._k(t, "fam", u), self._k(t, "addr", a)]
        familiar_ms = c.familiar_days * 86400 * 1000
        reply = self._check(
            keys=keys if read is None else [*keys, read],
            args=[int(now * 1000), who.addr, c.window * 1000, c.hard_cap, familiar_ms,
                  c.address_max_failures, tag if read is not None else b"",
                  int(familiar_ms * FAMILIAR_REFRESH), c.lockout_threshold,
                  int(PENDING_TTL * 1000)])
        action, reason, ms = reply[:3]
        value = reply[4] if len(reply) > 4 and isinstance(reply[4], bytes) else None
        return _verdict(action, reason, ms), value, len(reply) > 5 and reply[5] == 1

    def verification(self, who: Who, now: float, *, in_flight: bool = True) -> Verdict:
        c = self.config
        action, reason, ms = self._verification(
            keys=[self._k(who.tenant, "flood"), self._k(who.tenant, "lock", q(who.user))],
            args=[int(now * 1000), c.tenant_max_verifications, c.flood_window * 1000,
                  1 if in_flight else 0])
        return _verdict(action, reason, ms)

    def fail(self, who: Who, digest: str, now: float, *, in_flight: bool = True) -> float:
        c = self.config
        t, u, a = who.tenant, q(who.user), q(who.addr)
        ms = self._fail(
            keys=[self._k(t, "acct", u), self._k(t, "addr", a), self._k(t, "lock", u),
                  self._k(t, "ulock", u, a)],
            args=[int(now * 1000), who.addr, who.user, digest, c.window * 1000,
                  c.lockout_threshold, c.lockout_base * 1000, c.lockout_max * 1000,
                  1 if in_flight else 0])
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
