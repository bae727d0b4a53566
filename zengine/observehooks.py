"""The observation hooks of the contract (re-exported by :mod:`zengine.hookspecs`): what
metrics are fed by. Both are called on the request path, from worker threads and from the
event loop, so an implementation only counts: no I/O, no blocking, a few microseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from zengine.models import Observation, RequestSummary
    from zengine.runtime import Runtime

hookspec = pluggy.HookspecMarker("zengine")


@hookspec
def zengine_request_finished(summary: RequestSummary, runtime: Runtime) -> None:
    """Observe one answered provisioning request: path, status, outcome, client family, the
    seconds the client waited and the tenant (:class:`~zengine.models.RequestSummary`).

    Called once per request on a provisioning path, every answer included (error documents,
    the HTTP layer's own 408/503), on the **event loop**, just before the response is sent.
    Also once per answer of a plugin route (:func:`zengine_register_routes`), with the
    route's template as ``path`` (never the path asked: it may hold a token), an ``outcome``
    from the status and ``family=None``; docs/plugins.md gives the exact rules.
    Any code that answers a provisioning request (an in-event-loop fast path for cached
    requests too) calls ``runtime.hooks.request_finished``. Never block or do I/O; keep it to
    a few microseconds. The summary holds no username, address or secret: do not add them
    from elsewhere. An exception is swallowed (logged the first time only).

    Ordering: every plugin is called.

    .. versionadded:: 0.2
    .. versionchanged:: 0.2 plugin routes are reported too.
    """


@hookspec
def zengine_observe(observation: Observation, runtime: Runtime) -> None:
    """Observe something countable: a login and how long it took, one backend call, a password
    verification actually spent, a cache hit or miss, a shared-store error
    (:class:`~zengine.models.Observation`; docs/plugins.md lists every name and its fields).

    Reported by the core and plugins through ``runtime.observe(...)``, from worker threads
    and from the event loop alike (a fast path on the event loop reports its cache hits
    too), several times per request: never block or do I/O; keep it to a few microseconds.
    ``runtime`` is the runtime that did the work (a tenant's, with ``runtime.tenant``).
    Ignore names you do not know. An exception is swallowed (logged the first time only).

    Ordering: every plugin is called.

    .. versionadded:: 0.2
    """
