"""The fast path: a returning phone's fully cached login, answered on the event loop.

Almost every request is a phone sending the password it sent a moment ago, for the document it
got then. The long path runs every request in a worker thread (any backend may block) behind
Starlette's middleware and routing. When a ``GET`` on a provisioning path carries a username and
password that verified a moment ago (the *memo* below), the data generations are what they were
then and the rendered document is in the document cache, nothing the request needs can wait on
I/O, so it runs on the event loop: the same :func:`zengine.pipeline.handle`, with the chain's
answer taken from the memo instead of ``zengine_authenticate`` and the document from the cache.
Every other hook runs as on the long path — ``zengine_detect_client``, ``zengine_login_check``
(allow/deny lists, lockouts, limits), ``zengine_login_result``, ``zengine_audit`` — the same
``provision.request`` line is logged, and the answer has the same status, headers and bytes
(``tests/test_fastpath.py`` compares both paths request by request).

The memo holds one entry per username, like the verified-login cache: an HMAC of the password
under the login cache's key (never the password), the identity the chain returned, the data
generations of that moment and an expiry (the shorter of the document cache's and the login
cache's TTL). It is forgotten whenever the login cache forgets the user (a lockout, a failed
login, ``zengine users disable``) and it lives in this process only.

It is on only when ``[server] fast_path``, ``[login_cache]`` and ``[document_cache]`` are, and
every plugin with a hook on that path answers ``True`` to
:func:`~zengine.hookspecs.zengine_inline_safe` (the guard does not while its counters live in
Redis).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from zengine.doccache import Rendered
from zengine.fasthooks import INLINE_HOOKS
from zengine.models import ClientInfo, Credentials, Identity, ProvisionRequest

if TYPE_CHECKING:
    from zengine.runtime import Runtime

log = structlog.get_logger("zengine.fastpath")
#: The scope key under which :meth:`FastPath.lookup` leaves the request it parsed (before the
#: tenant step) for the long path: a ``GET`` without a path key, built from the same scope.
PARSED_KEY = "zengine.parsed_request"


@dataclass(frozen=True)
class Hit:
    """Everything the long path would have computed for this request, from the caches."""

    #: The request with its tenant resolved (:func:`zengine.tenancy.resolve_tenant`).
    request: ProvisionRequest
    #: The runtime that serves it (its tenant's).
    runtime: Runtime
    client: ClientInfo
    identity: Identity
    rendered: Rendered


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    identity: Identity
    generations: tuple[str, ...]
    expires: float
    #: ``repr(identity)``, the document cache key's first part, made once.
    identity_repr: str


class FastPath:
    """The memo and the decision whether a request can take the fast path."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.enabled = False
        self._clock = clock
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = runtime.settings.document_cache.max_entries

    def __len__(self) -> int:
        return len(self._items)

    def decide(self) -> None:
        """Called once the plugins have started: is the fast path allowed at all?"""
        settings = self.runtime.settings
        reasons = [name for name, on in (
            ("[server] fast_path", settings.server.fast_path),
            ("[login_cache] enabled", settings.login_cache.enabled),
            ("[document_cache] enabled", settings.document_cache.enabled)) if not on]
        unsafe = inline_unsafe(self.runtime)
        if unsafe:
            reasons.append(f"plugins not declared inline-safe: {', '.join(unsafe)}")
        self.enabled = not reasons
        if reasons and settings.server.fast_path:
            log.info("fastpath.off", reasons=reasons)

    def _digest(self, credentials: Credentials) -> bytes:
        return self.runtime.logins.keyed("fast-v1", credentials.username,
                                         credentials.password.get_secret_value())

    def remember(self, credentials: Credentials, identity: Identity,
                 generations: list[str]) -> None:
        """After the long path served a cacheable document to a verified login."""
        if not self.enabled or not credentials.password.get_secret_value():
            return
        ttl = min(self.runtime.settings.document_cache.ttl,
                  self.runtime.logins.ttl_for(identity.backend))
        entry = _Entry(self._digest(credentials), identity, tuple(generations),
                       self._clock() + ttl, repr(identity))
        with self._lock:
            self._items[credentials.username] = entry
            self._items.move_to_end(credentials.username)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def forget(self, username: str) -> None:
        with self._lock:
            self._items.pop(username, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def lookup(self, *, path: str, query: bytes, headers: Mapping[str, str],
               client_addr: str, parsed: dict[str, Any] | None = None) -> Hit | None:
        """The cached answer's parts for this request, or ``None``: take the long path.

        Only pure steps run before the decision (parsing, the tenant, client detection), so
        a request that falls through has had no effect: no hook with a side effect ran, no
        line was logged. Anything unusual falls through and the long path answers it.
        Everything request-dependent is decided by the functions the long path calls
        (``build_request``, ``resolve_tenant``/``runtime_for``, ``admit``); the memo is the
        serving (tenant's) runtime's, keyed by the username the tenant step left. The parsed
        request is left in ``parsed`` (the ASGI scope) under :data:`PARSED_KEY`.
        """
        from zengine.request import build_request
        from zengine.tenancy import resolve_tenant, runtime_for

        try:
            request = build_request(path=path, query=query, body=b"", headers=headers,
                                    client_addr=client_addr, settings=self.runtime.settings)
            if parsed is not None:
                # A pure result the long path would compute again from the same scope when
                # this request falls through (a first login, another password): it takes it
                # from here (zengine.app, ``make``).
                parsed[PARSED_KEY] = request
            request = resolve_tenant(request, self.runtime)
            runtime = runtime_for(request, self.runtime)
            return runtime.fast._lookup(request)
        except Exception:  # a bad request, a bad version, anything: the long path's to answer
            return None

    def _lookup(self, request: ProvisionRequest) -> Hit | None:
        from zengine.pipeline import admit

        runtime = self.runtime
        credentials = request.credentials
        if not self.enabled or credentials is None or not credentials.username \
                or not credentials.password.get_secret_value():
            return None
        with self._lock:
            entry = self._items.get(credentials.username)
        if entry is None or entry.expires <= self._clock() \
                or not hmac.compare_digest(entry.digest, self._digest(credentials)):
            return None
        client = admit(request, runtime)
        generations = runtime.hooks.data_generations(entry.identity, runtime)
        if generations is None or tuple(generations) != entry.generations:
            return None
        documents = runtime.documents
        rendered = documents.get(documents.key_for(entry.identity_repr, client, generations))
        if rendered is None:
            return None
        return Hit(request, runtime, client, entry.identity, rendered)


def inline_unsafe(runtime: Runtime) -> list[str]:
    """Plugins on the fast path's hooks that did not answer ``True`` to
    :func:`~zengine.fasthooks.zengine_inline_safe` (empty: the fast path may run)."""
    hook = runtime.hooks.pm.hook
    involved = {impl.plugin_name for name in INLINE_HOOKS
                for impl in getattr(hook, name).get_hookimpls()}
    safe = {impl.plugin_name for impl in hook.zengine_inline_safe.get_hookimpls()
            if impl.function(**{arg: runtime for arg in impl.argnames}) is True}
    return sorted(involved - safe)
