"""The verified-login cache: a returning phone's known-good password skips the slow check.

After a backend verified a password it may ``remember`` a keyed digest — HMAC-SHA256 under the
deployment's ``[login_cache]`` secret — of (backend, tenant, username, *material*, password).
Never the password. ``material`` is what the backend checked against: the stored argon2 hash
(SQL, static), so a changed password or a reloaded users file changes the digest and the old
entry simply stops matching; for LDAP the user's DN (the bind is the check, so only the TTL,
short by default, bounds a directory-side password change).

One entry per username: the digest of the last password that verified, followed by that
password's *tag* (:meth:`LoginCache.tag`: keyed the same way, over tenant, username and
password only, 16 bytes), which a guard holding the entry in Redis compares in its own check
to settle a returning login in one round trip (``zengine_guard``); ``password_tag = false``
leaves the tag out (the digest alone, as entries were before it). Entries live
in a bounded LRU in this process, or in the shared store (Redis) when the runtime has one, so
that every worker and instance benefits. Backends still read the user on every login, so a
disabled account is refused on a hit too; the login guard runs before any backend, so a hit
never bypasses a lockout. See docs/security.md for the threat model.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from zengine.models import Observation

log = structlog.get_logger("zengine.logincache")

#: Backends whose check is a remote bind, not a stored hash: a password changed there is only
#: noticed when the entry expires, so their default TTL is short.
DEFAULT_BACKEND_TTL = {"ldap": 300}
_KEY_PREFIX = "login"
#: An entry: the digest (HMAC-SHA256), then the password's tag (:meth:`LoginCache.tag`).
DIGEST_BYTES = 32
TAG_BYTES = 16


#: Store entries read ahead for the login being checked (slot -> value, ``None``: no entry):
#: the guard reads the user's slot in the same Redis round trip as its lockout check, so that
#: a returning phone's login costs one round trip less. Set only inside :func:`prefetching`.
_PREFETCHED: ContextVar[dict[str, bytes | None] | None] = ContextVar("zengine_login_prefetch",
                                                                     default=None)


class prefetching:
    """The scope of one login check: entries :func:`offer`-ed inside it are used (once) by the
    cache's lookup of that slot, and are gone when it ends, whatever happened in between.
    A class, not ``@contextmanager``: entered on every login, where a generator costs more."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token: Token[dict[str, bytes | None] | None] = _PREFETCHED.set({})

    def __exit__(self, *exc: object) -> None:
        _PREFETCHED.reset(self._token)


def offer(slot: str, value: bytes | None) -> None:
    """A value of the store's ``slot`` read just now by the caller (outside a
    :func:`prefetching` scope: ignored)."""
    found = _PREFETCHED.get()
    if found is not None:
        found[slot] = value


def _withdraw(slot: str) -> None:
    found = _PREFETCHED.get()
    if found:
        found.pop(slot, None)


class LoginCacheSettings(BaseModel):
    """``[login_cache]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``false`` turns the cache off: every login pays the full password check.
    enabled: bool = True
    #: HMAC key (at least 32 characters); make one with ``zengine make-secret``. Without it a
    #: random key is made per process, so workers cannot share entries.
    secret: SecretStr | None = None
    #: File holding the secret (first line), instead of ``secret``.
    secret_file: Path | None = None
    #: Seconds an entry lives, for backends without their own entry in ``backend_ttl``.
    ttl: int = Field(43200, ge=1, le=30 * 86400)
    #: Seconds per backend; LDAP defaults to 300.
    backend_ttl: dict[str, int] = Field(default_factory=dict)
    #: Entries kept by the in-process cache (least recently used dropped first).
    max_entries: int = Field(100_000, ge=16, le=10_000_000)
    #: ``auto``: the shared store (Redis) when one is configured, else this process's LRU.
    store: Literal["auto", "local"] = "auto"
    #: ``false``: entries carry no password tag (:meth:`LoginCache.tag`), so a dump of the
    #: store plus the secret cannot test password guesses without the backend's stored hash;
    #: the guard then never settles a login (two Redis round trips per returning login).
    password_tag: bool = True


@dataclass(frozen=True)
class LoginKey:
    """What a verification depended on, the password aside."""

    backend: str
    tenant: str | None
    username: str
    #: The stored hash (or another value that changes when the password does).
    material: str


class _Entries(Protocol):
    kind: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def delete(self, key: str) -> int: ...


class LocalEntries:
    """A bounded LRU with per-entry expiry, for one process."""

    kind = "local"

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._items[key] = (value, self._clock() + ttl)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def delete(self, key: str) -> int:
        with self._lock:
            return 1 if self._items.pop(key, None) is not None else 0


def _field(value: str | None) -> bytes:
    # Length-prefixed, so no choice of names can make two different tuples collide.
    data = (value if value is not None else "\x00none").encode("utf-8", "surrogatepass")
    return len(data).to_bytes(4, "big") + data


class LoginCache:
    def __init__(self, settings: LoginCacheSettings, key: bytes, entries: _Entries,
                 tenant: str = "", *,
                 observe: Callable[[Observation], None] | None = None) -> None:
        self.settings = settings
        # Keyed once: each digest copies the keyed state instead of hashing the key's pads
        # again (stdlib hmac; a third of a digest's cost, several digests per login).
        self._keyed = hmac.HMAC(key, digestmod=hashlib.sha256)
        self.entries = entries
        #: Slots are per (tenant, username): tenants share the store, and alice of one tenant
        #: must not evict alice of another.
        self.tenant = tenant
        #: Told of each hit and miss (``login_cache``) and each store failure
        #: (``store.error``); the runtime passes :meth:`~zengine.runtime.Runtime.observe`.
        self.observe = observe
        #: Called with the username whenever an entry is forgotten (the fast path's memo
        #: forgets with it).
        self.listeners: list[Callable[[str], None]] = []

    def __repr__(self) -> str:
        return f"LoginCache(enabled={self.settings.enabled}, store={self.entries.kind!r})"

    def ttl_for(self, backend: str) -> int:
        return self.settings.backend_ttl.get(
            backend, DEFAULT_BACKEND_TTL.get(backend, self.settings.ttl))

    def keyed(self, *parts: str | None) -> bytes:
        """HMAC-SHA256 under the cache's key of the length-prefixed ``parts``."""
        return self._mac(*parts)

    def _mac(self, *parts: str | None) -> bytes:
        mac = self._keyed.copy()
        mac.update(b"".join(_field(p) for p in parts))
        return mac.digest()

    def slot(self, username: str) -> str:
        """The store key of ``username``'s entry (for :func:`offer`)."""
        return self._slot(username)

    def _slot(self, username: str, tenant: str | None = None) -> str:
        # The username is keyed too: a dump of the store does not even list who logged in. One
        # slot per login name (the digest holds backend and tenant), so a lockout or an
        # operator's command can drop it knowing the name alone.
        tenant = self.tenant if tenant is None else tenant
        parts = ("user", username) if not tenant else ("tenant-user", tenant, username)
        return f"{_KEY_PREFIX}:{self._mac(*parts).hex()[:32]}"

    def tag(self, username: str, password: str) -> bytes:
        """16 bytes that tell whether ``password`` is the last one verified for ``username``
        (the end of the user's entry, after the digest), without the backend's material: what
        a login guard can compare before the backend is asked. It says nothing about whether
        the password still verifies (the material may have changed): only the digest does."""
        return self._mac("login-tag-v1", self.tenant, username, password)[:TAG_BYTES]

    def _digest(self, key: LoginKey, password: str) -> bytes:
        # The runtime's tenant too: a backend that reports no tenant of its own (a users file
        # per tenant) must still never let one tenant's entry match another's login.
        return self._mac("login-v1", key.backend, key.tenant, key.username, key.material,
                         password, *((self.tenant,) if self.tenant else ()))

    def _safely(self, action: str, call: Callable[[], bytes | int | None]) -> bytes | int | None:
        """A store that cannot answer is a miss (the slow path still decides), logged loudly."""
        try:
            return call()
        # StoreUnavailable, or whatever else a plugin's store client raises: never a 500.
        except Exception as exc:
            log.warning("login_cache.store_unavailable", action=action, store=self.entries.kind,
                        error=type(exc).__name__)
            if self.observe is not None:
                self.observe(Observation("store.error", "login_cache", self.entries.kind))
            return None

    def check(self, key: LoginKey, password: str) -> bool:
        """Was this exact password verified for this user, against this material, lately?"""
        if not self.settings.enabled or not password:
            return False
        slot = self._slot(key.username)
        found = _PREFETCHED.get()
        if found and slot in found:
            stored: bytes | int | None = found.pop(slot)
        else:
            stored = self._safely("get", lambda: self.entries.get(slot))
        # The digest is the entry's first DIGEST_BYTES (an entry written before the tag was
        # added is the digest alone, and still hits).
        return isinstance(stored, bytes) and hmac.compare_digest(stored[:DIGEST_BYTES],
                                                                 self._digest(key, password))

    def remember(self, key: LoginKey, password: str) -> None:
        if not self.settings.enabled or not password:
            return
        slot = self._slot(key.username)
        digest = self._digest(key, password)
        if self.settings.password_tag:
            digest += self.tag(key.username, password)
        ttl = self.ttl_for(key.backend)
        _withdraw(slot)
        self._safely("set", lambda: self.entries.set(slot, digest, ttl))

    def forget(self, username: str, *, tenant: str | None = None) -> None:
        """Drop the user's entry: lockout, disable, a failed login, an operator's change
        (``tenant``: another tenant's user than this cache's, for operator tools)."""
        # Over-forgetting is safe: the fast path's memo of this name goes too.
        for listener in self.listeners:
            listener(username)
        if self.settings.enabled:
            slot = self._slot(username, tenant)
            _withdraw(slot)
            self._safely("delete", lambda: self.entries.delete(slot))

    def verify(self, key: LoginKey, password: str, slow: Callable[[], bool]) -> bool:
        """``check``, else ``slow()`` (the real verification); remember a success, forget the
        user's entry on a failure."""
        if self.check(key, password):
            self._count(key.backend, "hit")
            return True
        if self.settings.enabled:
            self._count(key.backend, "miss")
        if slow():
            self.remember(key, password)
            return True
        self.forget(key.username)
        return False


    def _count(self, backend: str, result: str) -> None:
        if self.observe is not None:
            self.observe(Observation("login_cache", result, backend))


def load_key(settings: LoginCacheSettings, resolve: Callable[[Path], Path]) -> bytes | None:
    """The configured secret as bytes, or ``None`` when none is configured."""
    from zengine.errors import ConfigError

    if settings.secret is not None and settings.secret_file is not None:
        raise ConfigError("[login_cache]: set secret or secret_file, not both")
    if settings.secret_file is not None:
        path = resolve(settings.secret_file)
        try:
            text = path.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            reason = getattr(exc, "strerror", None) or "empty file"
            raise ConfigError(
                f"[login_cache] secret_file: cannot read {path}: {reason}") from None
    elif settings.secret is not None:
        text = settings.secret.get_secret_value()
    else:
        return None
    if len(text) < 32:
        raise ConfigError("[login_cache] secret must be at least 32 characters; make one with "
                          "`zengine make-secret`")
    return text.encode("utf-8")


def build(settings: LoginCacheSettings, resolve: Callable[[Path], Path],
          shared: _Entries | None, *, tenant: str = "",
          observe: Callable[[Observation], None] | None = None) -> LoginCache:
    """The cache for one runtime: the shared store when there is one (and ``store = "auto"``)."""
    key = load_key(settings, resolve)
    entries: _Entries
    if shared is not None and settings.store == "auto":
        entries = shared
        if key is None:
            log.warning("login_cache.no_secret",
                        hint="set [login_cache] secret so that workers share the cache")
    else:
        entries = LocalEntries(settings.max_entries)
    # Without a configured secret a random one per process: correct, just not shared.
    return LoginCache(settings, key if key is not None else os.urandom(32), entries, tenant,
                      observe=observe)
