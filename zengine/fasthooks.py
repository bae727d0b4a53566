"""The fast path's hook (re-exported by :mod:`zengine.hookspecs`): whether a plugin's
request-path hooks may run on the event loop (:mod:`zengine.fastpath`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from zengine.runtime import Runtime

hookspec = pluggy.HookspecMarker("zengine")

#: The hooks a fully cached login runs on the event loop (or, for authenticate, skips).
INLINE_HOOKS = ("zengine_resolve_tenant", "zengine_detect_client", "zengine_login_check",
                "zengine_login_result", "zengine_audit", "zengine_authenticate")


@hookspec
def zengine_inline_safe(runtime: Runtime) -> bool | None:
    """Declare that this plugin's hooks may run on the event loop for a fully cached login.

    A returning phone whose password verified a moment ago and whose document is in the
    document cache is answered on the event loop (``[server] fast_path``): the hooks in
    :data:`INLINE_HOOKS` run there as on every request, except ``zengine_authenticate``,
    whose answer is the last verification's. Return ``True`` when, in the running
    configuration, your implementations of those hooks never wait on I/O (a network call, a
    lock held across one), and, if you implement ``zengine_authenticate``, your
    ``zengine_data_generation`` changes whenever your answer for a password you accepted could
    (the user disabled, the stored hash, any identity field); ``None`` means unknown. The fast
    path runs only when every plugin implementing one of those hooks answers ``True``.
    Called once at startup, after ``zengine_startup``.

    Ordering: every plugin is asked.

    .. versionadded:: 0.2
    """
