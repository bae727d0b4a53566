"""The rendered-document cache: a returning phone gets the bytes built for it a moment ago.

An entry is the serialised document for one identity (every field of it), client family and
version, stored under the *data generation* that every plugin contributing to the document
reported (:func:`~zengine.hookspecs.zengine_data_generation`). A plugin that cannot tell when
its data changes answers ``None`` and the document is not cached; a plugin that contributes
(accounts, the build, post-processing) but does not implement the hook makes every document
uncacheable. Entries also expire after ``ttl`` seconds, which bounds how long a change that
no generation saw (data edited outside zengine) can go unnoticed.

Documents carry SIP passwords: they stay in this process's memory, never in a shared store,
and an expired one goes within :data:`~zengine.deadlines.SLACK` of its expiry even if no
request reads it again (:class:`~zengine.deadlines.Deadlines`, on the app's event loop).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from zengine.deadlines import Deadlines

if TYPE_CHECKING:
    from zengine.models import ClientInfo, Identity
    from zengine.runtime import Runtime

log = structlog.get_logger("zengine.doccache")

#: The hooks whose plugins shape a document: each must report a generation.
CONTRIBUTING_HOOKS = ("zengine_load_accounts", "zengine_build_document",
                      "zengine_postprocess_document")


def silent_contributors(hook: Any) -> dict[str, list[str]]:
    """Plugins (with the contributing hooks they implement) that shape documents but implement
    no ``zengine_data_generation``: with any of them loaded, no document is ever cached.
    ``hook`` is the plugin manager's hook relay."""
    answering = {impl.plugin_name for impl in hook.zengine_data_generation.get_hookimpls()}
    silent: dict[str, list[str]] = {}
    for name in CONTRIBUTING_HOOKS:
        for impl in getattr(hook, name).get_hookimpls():
            if impl.plugin_name not in answering:
                silent.setdefault(impl.plugin_name, []).append(name)
    return dict(sorted(silent.items()))


def warn_uncacheable(runtime: Runtime) -> None:
    """At startup, name the plugins that make every document uncacheable: nothing else shows
    it but a slow server (every login builds its document; the fast path never answers)."""
    if not runtime.settings.document_cache.enabled:
        return
    silent = silent_contributors(runtime.hooks.pm.hook)
    if silent:
        named = "; ".join(f"{name} ({', '.join(hooks)})" for name, hooks in silent.items())
        log.warning("document_cache.uncacheable", plugins=list(silent),
                    reason=f"these plugins shape documents but implement no "
                           f"zengine_data_generation: {named}",
                    effect="no document is cached and the fast path never answers",
                    hint="implement zengine_data_generation in each plugin "
                         "(docs/plugins.md), or disable it in [plugins] disabled")


class DocumentCacheSettings(BaseModel):
    """``[document_cache]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``false``: every request builds its document.
    enabled: bool = True
    #: Seconds an entry lives at most, however unchanged the generations say the data is.
    ttl: float = Field(30.0, ge=0.1, le=3600)
    #: Documents kept (least recently used dropped first).
    max_entries: int = Field(10_000, ge=16, le=1_000_000)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    account_count: int


class DocumentCache:
    def __init__(self, settings: DocumentCacheSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._items: OrderedDict[tuple[str, ...], tuple[Rendered, float]] = OrderedDict()
        self._lock = threading.Lock()
        #: Between :meth:`close` and :meth:`open`: a straggler's put (a request that outlived
        #: a reload's drain) is not kept, in a cache nothing empties again.
        self._closed = False
        #: Each entry's expiry, so that it goes with no request to read it: on the loop
        #: :meth:`zengine.runtime.Runtime.serve_on` gives it (none: entries go when read).
        self.deadlines = Deadlines(lambda: self._clock())

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(identity: Identity, client: ClientInfo, generations: list[str]) -> tuple[str, ...]:
        # repr(identity) names every field (profile, tenant, groups, overrides, attributes),
        # so two logins that would build different documents never share an entry.
        return DocumentCache.key_for(repr(identity), client, generations)

    @staticmethod
    def key_for(identity_repr: str, client: ClientInfo,
                generations: list[str]) -> tuple[str, ...]:
        """:meth:`key` with ``repr(identity)`` made once (the fast path's memo keeps it)."""
        return (identity_repr, client.family, str(client.version), client.requested or "",
                *generations)

    def get(self, key: tuple[str, ...]) -> Rendered | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] <= self._clock():
                del self._items[key]
                self.deadlines.discard(key)
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: tuple[str, ...], rendered: Rendered) -> None:
        """From a worker thread (the long path): the deadline's timer is armed on the loop."""
        with self._lock:
            if self._closed:
                return
            item = (rendered, self._clock() + self.settings.ttl)
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.settings.max_entries:
                self.deadlines.discard(self._items.popitem(last=False)[0])
            # Under the lock, like the discards: the deadline pending is the entry's own.
            self.deadlines.add(item[1], partial(self._expire, key, item), key)

    def _expire(self, key: tuple[str, ...], item: tuple[Rendered, float]) -> None:
        """On the loop, ``item``'s deadline: out, unless put again since (its own)."""
        with self._lock:
            if self._items.get(key) is item:
                del self._items[key]

    def clear(self) -> None:
        """Drop everything (a plugin reloaded its data, an operator changed it)."""
        with self._lock:
            self._items.clear()
            self.deadlines.clear()

    def close(self) -> None:
        """The runtime stops (a reload, the worker's end): the documents' SIP passwords go
        now, not whenever the old runtime is collected, and no timer is left."""
        with self._lock:
            self._closed = True
        self.deadlines.close()
        self.clear()

    def open(self) -> None:
        """The runtime starts (again): puts are kept from now on."""
        with self._lock:
            self._closed = False
