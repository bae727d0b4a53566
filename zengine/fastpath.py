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
under the login cache's key, the identity the chain returned, the data generations of that
moment and an expiry (the shorter of the document cache's and the login cache's TTL). It is
forgotten whenever the login cache forgets the user (a lockout, a failed login, ``zengine users
disable``) and it lives in this process only.

With an entry, up to :data:`PARSES_PER_ENTRY` *kept parses* of the exact requests that hit it
(a phone's bytes, parsed once): these do hold the plaintext password (the parsed query, the
``Authorization`` header, the login attempt), so they live no longer than their entry: dropped
when it is forgotten, replaced, evicted, found expired or swept expired (:meth:`FastPath.sweep`),
when the runtime stops (:meth:`FastPath.close`), and at the latest
:data:`~zengine.deadlines.SLACK` after it expires, however idle the worker
(:class:`~zengine.deadlines.Deadlines`).

It is on only when ``[server] fast_path``, ``[login_cache]`` and ``[document_cache]`` are, and
every plugin with a hook on that path answers ``True`` to
:func:`~zengine.hookspecs.zengine_inline_safe` (the guard does not while its counters live in
Redis).
"""

from __future__ import annotations

import hashlib
import hmac
import marshal
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any

import structlog
from starlette.datastructures import Headers

from zengine.deadlines import Deadlines
from zengine.doccache import Rendered
from zengine.fasthooks import INLINE_HOOKS
from zengine.models import ClientInfo, Credentials, Identity, ProvisionRequest

if TYPE_CHECKING:
    from zengine.runtime import Runtime

log = structlog.get_logger("zengine.fastpath")
#: The scope key under which :meth:`FastPath.lookup` leaves the request it parsed (before the
#: tenant step) for the long path: a ``GET`` without a path key, built from the same scope.
PARSED_KEY = "zengine.parsed_request"


class Hit:
    """Everything the long path would have computed for this request, from the caches."""

    __slots__ = ("client", "identity", "made", "rendered", "request", "runtime")

    def __init__(self, request: ProvisionRequest, runtime: Runtime, client: ClientInfo,
                 identity: Identity, rendered: Rendered) -> None:
        #: The request with its tenant resolved (:func:`zengine.tenancy.resolve_tenant`).
        self.request = request
        #: The runtime that serves it (its tenant's).
        self.runtime = runtime
        self.client = client
        self.identity = identity
        self.rendered = rendered
        #: What the pipeline made of these parts alone (the login attempt, the chain's
        #: result, audit events; all frozen), for the next request this hit serves: a kept
        #: parse's next request gets the same hit when every part is the same object.
        self.made: dict[str, Any] = {}

    def same(self, request: ProvisionRequest, runtime: Runtime, client: ClientInfo,
             identity: Identity, rendered: Rendered) -> bool:
        return self.request is request and self.runtime is runtime \
            and self.client is client and self.identity is identity \
            and self.rendered is rendered


class _Entry:
    """One username's memo entry."""

    __slots__ = ("alive", "digest", "expires", "generations", "identity", "identity_repr",
                 "parses", "username")

    def __init__(self, username: str, digest: bytes, identity: Identity,
                 generations: tuple[str, ...], expires: float) -> None:
        #: Its key in the memo (the username the tenant step left).
        self.username = username
        self.digest = digest
        self.identity = identity
        self.generations = generations
        self.expires = expires
        #: ``repr(identity)``, the document cache key's first part, made once.
        self.identity_repr = repr(identity)
        #: The keys of the parses kept for it (:class:`_Parse`, in the root runtime's fast
        #: path), and whether it is still in its memo: both changed under the root's lock.
        self.parses: list[bytes] = []
        self.alive = True


class _Parse:
    """What the steps before the memo made of one exact request that then hit ``entry``
    (:meth:`FastPath.lookup_scope`): its headers, client address and parsed request."""

    __slots__ = ("client_addr", "doc_key", "entry", "headers", "hit", "request")

    def __init__(self, entry: _Entry, request: ProvisionRequest, headers: Mapping[str, str],
                 client_addr: str) -> None:
        self.entry = entry
        self.request = request
        self.headers = headers
        self.client_addr = client_addr
        #: The hit it made last (:meth:`Hit.same`).
        self.hit: Hit | None = None
        #: The client it last saw and the document cache's key for it and the entry.
        self.doc_key: tuple[ClientInfo, tuple[str, ...]] | None = None


#: Parses kept per memo entry: a phone at home and roaming, or two phones. Each costs ~9 KB
#: with its hit (tracemalloc) against ~0.6 KB for the entry, and holds the password: a third
#: request shape is parsed on every request (docs/configuration.md, ``max_entries``).
PARSES_PER_ENTRY = 2
#: Least recently remembered entries looked at for expiry by each sweep (a login remembered,
#: a parse kept): more than one, so that sweeps outpace the entries remembered.
SWEEP = 4


class FastPath:
    """The memo and the decision whether a request can take the fast path."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.enabled = False
        self._clock = clock
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = runtime.settings.document_cache.max_entries
        #: The root runtime's only (the one that parses; a tenant's are unused, so
        #: empty and keyless): keyed digest of a request's path, query, headers and peer ->
        #: its :class:`_Parse`. Only while the memo entry the request hit holds its
        #: password's HMAC: dropped with it (:meth:`_drop_parses`).
        self._parses: dict[bytes, _Parse] = {}
        self._parse_key = os.urandom(32) if runtime.root is None else b""
        #: The root's only, like ``_parses``: every entry with a kept parse, by expiry, to go
        #: on time with no request to find it (memo ``_expire``); on ``_clock`` (tests').
        self.deadlines = Deadlines(lambda: self._clock())

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
        entry = _Entry(credentials.username, self._digest(credentials), identity,
                       tuple(generations), self._clock() + ttl)
        gone = []
        with self._lock:
            old = self._items.get(credentials.username)
            if old is not None:
                gone.append(old)
            self._items[credentials.username] = entry
            self._items.move_to_end(credentials.username)
            while len(self._items) > self.max_entries:
                gone.append(self._items.popitem(last=False)[1])
            gone += self._expired()
        self._root()._drop_parses(gone)

    def _expired(self) -> list[_Entry]:
        """Pop the expired entries among the few least recently remembered (under the
        lock): a user who never comes back takes her parses (her password) with her entry
        at someone else's login, not only when she is evicted."""
        now = self._clock()
        old = [(name, entry) for name, entry in islice(self._items.items(), SWEEP)
               if entry.expires <= now]
        for name, _ in old:
            del self._items[name]
        return [entry for _, entry in old]

    def sweep(self) -> None:
        """Drop the expired entries among the few least recently remembered."""
        with self._lock:
            gone = self._expired()
        self._root()._drop_parses(gone)

    def _expire(self, username: str, entry: _Entry) -> None:
        """``entry`` was found expired: out of the memo with its parses, unless a worker
        thread has replaced it since (then its replacement dropped them)."""
        with self._lock:
            if self._items.get(username) is not entry:
                return
            del self._items[username]
        self._root()._drop_parses([entry])

    def forget(self, username: str) -> None:
        with self._lock:
            entry = self._items.pop(username, None)
        if entry is not None:
            self._root()._drop_parses([entry])

    def clear(self) -> None:
        with self._lock:
            gone = list(self._items.values())
            self._items.clear()
        self._root()._drop_parses(gone)

    def close(self) -> None:
        """The runtime stops (a reload, the worker's end): no more hits, and the kept
        parses' passwords go now, not whenever the old runtime is collected."""
        self.enabled = False
        self.deadlines.close()
        self.clear()

    def _root(self) -> FastPath:
        return (self.runtime.root or self.runtime).fast

    def _drop_parses(self, entries: list[_Entry]) -> None:
        """The entries left their memo: their parses (their passwords) go with them."""
        if not entries:
            return
        with self._lock:
            for entry in entries:
                entry.alive = False
                self.deadlines.discard(entry)  # gone early: its deadline with it
                for key in entry.parses:
                    self._parses.pop(key, None)
                entry.parses.clear()

    def _keep_parse(self, key: bytes, parse: _Parse, memo: FastPath) -> None:
        """On the event loop; ``memo``: the fast path whose memo holds ``parse.entry``."""
        entry = parse.entry
        with self._lock:
            if not entry.alive or len(entry.parses) >= PARSES_PER_ENTRY \
                    or key in self._parses:
                return
            if not entry.parses:  # under the lock: _drop_parses discards it; the 2nd goes too
                self.deadlines.add(entry.expires, partial(memo._expire, entry.username, entry),
                                   entry)
            entry.parses.append(key)
            self._parses[key] = parse

    def lookup_scope(self, scope: MutableMapping[str, Any], path: str,
                     resolve: Callable[[str, Headers], str]) -> Hit | None:
        """:meth:`lookup` for an ASGI ``GET`` scope, whose headers and client address
        (``resolve(peer, headers)``) are made here. A request whose path, query, headers
        and peer are exactly those of one that hit the memo entry still there takes that
        one's parse (the same pure functions of the same bytes) and that entry's password
        check (the same password); everything after it runs as for any request."""
        query: bytes = scope.get("query_string", b"")
        peer = scope.get("client")
        host = peer[0] if peer else ""
        try:
            # marshal version 2 (no references): equal values, equal bytes.
            material = marshal.dumps((path, query, scope.get("headers"), host), 2)
        except ValueError:  # headers of an unexpected type: parsed as usual
            key = None
        else:
            key = hashlib.blake2b(material, key=self._parse_key, digest_size=16).digest()
            parse = self._parses.get(key)
            if parse is not None:
                return self.lookup(path=path, query=query, headers=parse.headers,
                                   client_addr=parse.client_addr, parsed=scope, kept=parse)
        headers = Headers(scope=scope)
        return self.lookup(path=path, query=query, headers=headers,
                           client_addr=resolve(host, headers), parsed=scope, key=key)

    def lookup(self, *, path: str, query: bytes, headers: Mapping[str, str],
               client_addr: str, parsed: MutableMapping[str, Any] | None = None,
               kept: _Parse | None = None, key: bytes | None = None) -> Hit | None:
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
            parsed_request = kept.request if kept is not None else build_request(
                path=path, query=query, body=b"", headers=headers, client_addr=client_addr,
                settings=self.runtime.settings)
            if parsed is not None:
                # A pure result the long path would compute again from the same scope when
                # this request falls through (a first login, another password): it takes it
                # from here (zengine.app, ``make``).
                parsed[PARSED_KEY] = parsed_request
            request = resolve_tenant(parsed_request, self.runtime)
            runtime = runtime_for(request, self.runtime)
            found = runtime.fast._lookup(request, kept)
        except Exception:  # a bad request, a bad version, anything: the long path's to answer
            return None
        if found is None:
            return None
        hit, entry = found
        if kept is not None:
            kept.hit = hit
        elif key is not None:
            # A new request shape is rare (a phone's first hit): a sweep of its memo then.
            runtime.fast.sweep()
            self._keep_parse(key, _Parse(entry, parsed_request, headers, client_addr),
                             runtime.fast)
        return hit

    def _lookup(self, request: ProvisionRequest,
                kept: _Parse | None = None) -> tuple[Hit, _Entry] | None:
        """The hit and the memo entry it came from; ``kept``: this request's parse, whose
        entry its password was checked against before (the same bytes: the same password)
        and whose last hit it gets again when every part is the same."""
        from zengine.pipeline import admit

        runtime = self.runtime
        credentials = request.credentials
        if not self.enabled or credentials is None or not credentials.username \
                or not credentials.password.get_secret_value():
            return None
        with self._lock:
            entry = self._items.get(credentials.username)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._expire(credentials.username, entry)
            return None
        if (kept is None or entry is not kept.entry) \
                and not hmac.compare_digest(entry.digest, self._digest(credentials)):
            return None
        client = admit(request, runtime)
        generations = runtime.hooks.data_generations(entry.identity, runtime)
        if generations is None or tuple(generations) != entry.generations:
            return None
        documents = runtime.documents
        # The document's key is a function of the entry (its identity and generations, which
        # these equal) and the client: made once per kept parse and client.
        made = kept.doc_key if kept is not None and kept.entry is entry else None
        if made is not None and made[0] is client:
            key = made[1]
        else:
            key = documents.key_for(entry.identity_repr, client, generations)
            if kept is not None and kept.entry is entry:
                kept.doc_key = (client, key)
        rendered = documents.get(key)
        if rendered is None:
            return None
        last = kept.hit if kept is not None else None
        if last is not None and last.same(request, runtime, client, entry.identity, rendered):
            return last, entry
        return Hit(request, runtime, client, entry.identity, rendered), entry


def inline_unsafe(runtime: Runtime) -> list[str]:
    """Plugins on the fast path's hooks that did not answer ``True`` to
    :func:`~zengine.fasthooks.zengine_inline_safe` (empty: the fast path may run)."""
    hook = runtime.hooks.pm.hook
    involved = {impl.plugin_name for name in INLINE_HOOKS
                for impl in getattr(hook, name).get_hookimpls()}
    safe = {impl.plugin_name for impl in hook.zengine_inline_safe.get_hookimpls()
            if impl.function(**{arg: runtime for arg in impl.argnames}) is True}
    return sorted(involved - safe)
