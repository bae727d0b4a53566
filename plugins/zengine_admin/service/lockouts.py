"""The login guard's failures and lockouts: list and clear."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from zengine_admin.models import Cleared, LockoutView
from zengine_admin.problems import NotFound
from zengine_admin.service.base import Actor, audit, scoped

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _guard(runtime: Runtime) -> Any:
    guard = runtime.state.get("guard")
    if guard is None or not hasattr(guard, "state"):
        raise NotFound("the login guard is not running ([plugins.guard] enabled = false, "
                       "or the guard plugin is disabled)")
    return guard


@scoped
def lockouts(runtime: Runtime, actor: Actor) -> list[LockoutView]:
    """Accounts and addresses with failures in the guard's window, and how long each stays
    locked (what ``zengine lockouts list`` prints), in the actor's tenant."""
    actor.require("read")
    guard = _guard(runtime)
    entries = guard.state.entries(time.time())
    return [LockoutView(tenant=e.tenant, kind=e.kind, name=e.name, failures=e.failures,
                        locked_for=int(e.locked_for))
            for e in entries if actor.sees(e.tenant)]


@scoped
def clear_lockouts(runtime: Runtime, actor: Actor, name: str | None) -> Cleared:
    """Forget the failures and lockouts of ``name`` (a user or an address), or of everybody
    in the actor's tenant."""
    actor.require("write")
    guard = _guard(runtime)
    tenant = actor.tenant
    removed = guard.state.clear(name, tenant)
    audit(runtime, actor, "lockouts.cleared", username=name,
          detail=f"name={name or '*'} tenant={tenant if tenant is not None else '*'} "
                 f"removed={removed}")
    return Cleared(cleared=int(removed))
