"""The guard itself: address lists, the verdict before the chain, the record after it, the
security log line and audit events, and what happens when Redis cannot be reached."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TypeVar

import structlog

from zengine import logincache
from zengine.errors import AccessDenied, BackendUnavailable, ConfigError, TooManyAttempts
from zengine.logincache import LoginCache
from zengine.models import AuditEvent, LoginAttempt, LoginResult, Observation
from zengine.runtime import Runtime
from zengine.settings import resolve_secret
from zengine_guard.memory import MemoryState
from zengine_guard.redis_state import RedisState
from zengine_guard.settings import GuardSettings
from zengine_guard.state import OK, GuardState, Verdict, Who

NAME = "guard"
# fail2ban reads this logger's lines (contrib/fail2ban/); keep the event name stable.
security_log = structlog.get_logger("zengine.security")
log = structlog.get_logger("zengine.guard")
T = TypeVar("T")
#: Every Redis error the guard meets (metrics count them; the log says so once per 10 s).
_STORE_ERROR = Observation("store.error", "guard", "redis")
#: The attempt whose check settled it (see :meth:`Guard.record`); per request, as each runs in
#: a context of its own.
_SETTLED: ContextVar[LoginAttempt | None] = ContextVar("zengine_guard_settled", default=None)
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def _lists(table: Mapping[str, tuple[str, ...]]) -> dict[str, Networks]:
    return {path: tuple(ipaddress.ip_network(e, strict=False) for e in entries)
            for path, entries in table.items()}


def minutes_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many login attempts. Please try again in {minutes} {unit}."


class Guard:
    """Built once per runtime (``runtime.state["guard"]``)."""

    def __init__(self, config: GuardSettings, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.allow = _lists(config.allow)
        self.deny = _lists(config.deny)
        self.local: GuardState = MemoryState(config)
        self.redis_client: object | None = None
        self.state: GuardState = self.local
        self.redis_errors = 0
        self._last_alarm = 0.0
        self._alarm_lock = threading.Lock()
        url = resolve_secret(config.redis_url, config.redis_url_file, runtime.settings,
                             "[plugins.guard] redis_url")
        if url is not None:
            import redis

            try:
                self.redis_client = redis.Redis.from_url(
                    url.get_secret_value(), socket_timeout=config.redis_timeout,
                    socket_connect_timeout=config.redis_timeout, **_driver_info())
            except ValueError:
                # redis-py names the URL in its message: say what is wrong, not the URL.
                raise ConfigError("[plugins.guard] redis_url is not a redis:// or rediss:// "
                                  "URL") from None
            self.state = RedisState(config, self.redis_client)
        self.key = self._digest_key()

    def _digest_key(self) -> bytes:
        secret = resolve_secret(self.config.digest_key, self.config.digest_key_file,
                                self.runtime.settings, "[plugins.guard] digest_key")
        if secret is not None:
            return secret.get_secret_value().encode()
        if isinstance(self.state, RedisState):
            # Every worker and instance must compute the same digest of one password: the
            # first to start leaves a random key in Redis for the others.
            name = f"{self.config.key_prefix}guard:digest-key"
            try:
                self.state.client.set(name, os.urandom(32), nx=True)
                key = self.state.client.get(name)
                if isinstance(key, bytes):
                    return key
            except Exception as exc:
                self._alarm(exc)
        return os.urandom(32)

    def open_connections(self, count: int) -> int:
        """Open up to ``count`` Redis connections now and leave them in the client's pool;
        how many. redis-py opens one lazily the first time a thread finds none free, and a
        restart storm has every worker thread find none at once: ~0.5 ms of CPU and a round
        trip each (connect, HELLO, CLIENT SETINFO), paid by the first logins."""
        if self.redis_client is None:
            return 0
        import redis

        pool = self.redis_client.connection_pool  # type: ignore[attr-defined]
        opened: list[object] = []
        try:
            for _ in range(count):  # bounded: at most ``count`` connections
                opened.append(pool.get_connection())
        except (redis.RedisError, OSError):
            # Unreachable: the first failure ends it (not ``count`` connect timeouts at
            # startup); readiness and the logins' own calls say so.
            pass
        finally:
            for connection in opened:
                pool.release(connection)
        return len(opened)

    def close(self) -> None:
        if self.redis_client is not None:
            self.redis_client.close()  # type: ignore[attr-defined]

    # -- the hooks' work ------------------------------------------------------------------

    def digest(self, attempt: LoginAttempt) -> str:
        """A keyed digest of the attempted secret (never the secret): tells distinct
        passwords apart, 64 bits so a leaked store gives little to test guesses against."""
        message = "\0".join((attempt.kind, attempt.tenant, attempt.username,
                             attempt.secret.get_secret_value())).encode("utf-8", "replace")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:16]

    @staticmethod
    def who(attempt: LoginAttempt) -> Who:
        # Token and portal logins get counters of their own kind.
        user = attempt.username if attempt.kind == "password" else \
            f"{attempt.kind}:{attempt.username}"
        return Who(attempt.tenant, user, attempt.client_addr)

    def listed(self, attempt: LoginAttempt) -> bool:
        """False when the address is refused on this path by the allow/deny lists."""
        if not self.allow and not self.deny:
            return True  # no lists (the usual case): nothing to parse the address for
        try:
            address = ipaddress.ip_address(attempt.client_addr)
        except ValueError:
            address = None

        def hits(table: dict[str, Networks]) -> bool:
            nets = (*table.get("*", ()), *table.get(attempt.path, ()))
            return address is not None and any(address in net for net in nets)

        if hits(self.deny):
            return False
        applies = "*" in self.allow or attempt.path in self.allow
        return not applies or hits(self.allow)

    def check(self, attempt: LoginAttempt, logins: LoginCache | None = None) -> None:
        """The verdict before the chain (lists, lockouts, per-address limits): a plain
        function of the attempt, so any path that answers a login (a fast path for cached
        requests, say) can call it; raises ``AccessDenied`` or ``TooManyAttempts``. With
        ``logins`` (the runtime's verified-login cache) the user's cache entry is read in the
        same Redis round trip and offered to the cache (:func:`zengine.logincache.offer`)."""
        if not self.listed(attempt):
            self._refused(attempt, "denied", 0)
            raise AccessDenied(f"address {attempt.client_addr} refused on {attempt.path}")
        who = self.who(attempt)
        ahead = self._read_ahead(attempt, logins)
        if _SETTLED.get() is not None:
            # A check settled before in this context whose record never came (the chain
            # raised): not this login's, even when the attempt is the same object (the fast
            # path keeps one per hit).
            _SETTLED.set(None)

        def step(state: GuardState) -> Verdict:
            if ahead is None or not isinstance(state, RedisState):
                return state.check(who, time.time())
            slot, key, tag = ahead
            verdict, value, settled = state.check_reading(who, time.time(), key, tag)
            if verdict.action == "ok":
                logincache.offer(slot, value)
                if settled:
                    # No in-flight mark was left and a success owes no record: ``record``
                    # of this very attempt skips SUCCEED (one Redis round trip less).
                    _SETTLED.set(attempt)
            return verdict

        verdict: Verdict = self._call(step, OK)
        if verdict.action == "ok":
            return
        retry = max(1, math.ceil(verdict.retry_after))
        self._refused(attempt, verdict.action, retry, verdict)
        raise TooManyAttempts(f"{verdict.action}: {verdict.reason}", retry_after=retry,
                              public_message=minutes_message(retry))

    def _read_ahead(self, attempt: LoginAttempt,
                    logins: LoginCache | None) -> tuple[str, str, bytes] | None:
        """(store key, Redis key, the password's tag) of the user's verified-login entry,
        when the login cache lives on this guard's Redis: the check reads it too, saving the
        cache a round trip, and compares the tag (:meth:`LoginCache.tag`: was this the last
        password verified for this user?) to settle the login in the same round trip."""
        if logins is None or attempt.kind != "password" or not logins.settings.enabled \
                or self.redis_client is None:
            return None
        # Only with the guard on Redis (redis is loaded then): a worker without it never
        # imports redis (tests/test_lean_imports.py).
        from zengine_guard.store import RedisStore

        entries = logins.entries
        if not isinstance(entries, RedisStore) or entries.client is not self.redis_client:
            return None
        slot = logins.slot(attempt.username)
        # [login_cache] password_tag = false: entries carry no tag, and the empty tag never
        # settles (CHECK still reads the entry, saving the cache its own round trip).
        tag = logins.tag(attempt.username, attempt.secret.get_secret_value()) \
            if logins.settings.password_tag else b""
        return slot, entries.prefix + slot, tag

    def verification(self, attempt: LoginAttempt) -> None:
        """The tenant's flood limit, for a login about to spend a slow verification (a
        verified-login cache hit never gets here)."""
        who = self.who(attempt)
        # Asked from the login's own context (zengine.verifying announces in the thread
        # that runs the chain), so _SETTLED is this login's: a settled check left no
        # in-flight mark, and a refusal must not remove another login's.
        in_flight = _SETTLED.get() is not attempt
        verdict: Verdict = self._call(
            lambda state: state.verification(who, time.time(), in_flight=in_flight), OK)
        if verdict.action == "ok":
            return
        retry = max(1, math.ceil(verdict.retry_after))
        self._refused(attempt, verdict.action, retry, verdict)
        raise TooManyAttempts(f"{verdict.action}: {verdict.reason}", retry_after=retry,
                              public_message=minutes_message(retry))

    def record(self, attempt: LoginAttempt, result: LoginResult) -> None:
        who = self.who(attempt)
        # Settled by its check (RedisState.check_reading): nothing in flight, a success
        # changes nothing; only this attempt's own check counts, and only once.
        settled = _SETTLED.get() is attempt
        if settled:
            _SETTLED.set(None)
        if result.accepted:
            if not settled:
                self._call(lambda state: state.succeed(who, time.time()), None)
            return
        digest = self.digest(attempt)
        locked: float = self._call(
            lambda state: state.fail(who, digest, time.time(), in_flight=not settled), 0.0)
        # Unknown user and wrong password: one reason, so the log cannot tell them apart.
        self._refused(attempt, "wrong_login", 0, locked_now=locked or None)

    def _call(self, step: Callable[[GuardState], T], unguarded: T) -> T:
        """Run one state step; when Redis fails, apply ``on_redis_error`` (``open`` answers
        ``unguarded``)."""
        try:
            return step(self.state)
        except Exception as exc:
            if self.state is self.local or not _is_redis_error(exc):
                raise
            self._alarm(exc)
            mode = self.config.on_redis_error
            if mode == "closed":
                raise BackendUnavailable("guard: Redis unreachable (on_redis_error = closed)") \
                    from None
            if mode == "open":
                return unguarded
            return step(self.local)

    def _alarm(self, exc: BaseException) -> None:
        self.runtime.observe(_STORE_ERROR)
        with self._alarm_lock:
            self.redis_errors += 1
            now = time.monotonic()
            if now - self._last_alarm < 10 and self.redis_errors > 1:
                return
            self._last_alarm = now
        # Loud, but once per 10 s: an outage must not flood the log it is reported in.
        log.error("guard.redis_unavailable", error=type(exc).__name__,
                  on_redis_error=self.config.on_redis_error, errors_total=self.redis_errors)

    def _refused(self, attempt: LoginAttempt, reason: str, retry_after: int,
                 verdict: Verdict | None = None, locked_now: float | None = None) -> None:
        """The one security line per refused login (fail2ban reads it) and the audit event."""
        fields: dict[str, object] = {"reason": reason}
        if verdict is not None:
            fields["limit"] = verdict.reason
            fields["retry_after"] = retry_after
        if locked_now:
            fields["locks_for"] = int(locked_now)
        # client_addr first: fail2ban's console pattern anchors on it, before any value an
        # attacker chooses (the username).
        security_log.warning("security.login_refused", client_addr=attempt.client_addr,
                             kind=attempt.kind, tenant=attempt.tenant,
                             username=attempt.username, **fields)
        if reason in ("locked", "limited"):
            self.runtime.hooks.audit(AuditEvent(
                event=f"login.{reason}", outcome=reason, username=attempt.username,
                client_addr=attempt.client_addr, tenant=attempt.tenant,
                detail=f"{verdict.reason if verdict else ''}; retry after {retry_after}s"),
                self.runtime)


def _driver_info() -> dict[str, object]:
    """The client's name and version, resolved once: redis-py 8 otherwise reads its package
    metadata for every new connection (~1 ms of CPU each, and a restart storm opens one per
    busy thread). Redis gets the same ``CLIENT SETINFO`` either way."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # pragma: no cover - redis < 7 has no DriverInfo
        return {}
    return {"driver_info": DriverInfo()}


def _is_redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, redis.RedisError | OSError)
