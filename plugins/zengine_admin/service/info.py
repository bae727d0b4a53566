"""Read-only views: tenants, profiles, plugins and readiness status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zengine import __version__
from zengine_admin.models import BackendStatus, PluginView, ProfileView, StatusView, TenantView
from zengine_admin.service.base import Actor, scoped, sql_call, sql_own, static_users

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def tenants(runtime: Runtime, actor: Actor) -> list[TenantView]:
    """The tenants zengine knows of: the configured ones (``[tenants.<name>]``, each with a
    runtime of its own), the tenant rows of the SQL own schema and the tenants the static
    file's users name. Read-only: tenants are configuration."""
    actor.require("read")
    from zengine_sql import admin

    root = runtime.for_tenant("") or runtime
    counts: dict[tuple[str, str], int | None] = {
        (name, "config"): None for name in root.tenants}
    state = sql_own(root)
    if state is not None:
        for row in sql_call(lambda: admin.list_tenants(state)):
            counts[(row["name"], "sql")] = int(row["users"])
    for user in static_users(root).values():
        if user.tenant:
            key = (user.tenant, "static")
            counts[key] = (counts.get(key) or 0) + 1
    return [TenantView(name=name, source=source, users=n)
            for (name, source), n in sorted(counts.items())
            if actor.tenant is None or name == actor.tenant]


@scoped
def profiles(runtime: Runtime, actor: Actor) -> list[ProfileView]:
    actor.require("read")
    return [ProfileView(name=name, settings=dict(values))
            for name, values in sorted(runtime.settings.profiles.items())]


def plugins(runtime: Runtime, actor: Actor) -> list[PluginView]:
    actor.require("read")
    return [PluginView(name=info.name, version=info.version, hooks=list(info.hooks))
            for info in runtime.hooks.plugin_info()]


@scoped
def status(runtime: Runtime, actor: Actor) -> StatusView:
    """Every plugin's readiness probe, with the detail ``/readyz`` leaves out (no secret,
    URL or host name is in it by the probes' contract)."""
    actor.require("read")
    results = runtime.hooks.readiness(runtime)
    return StatusView(ready=all(r.ready for r in results), version=__version__,
                      backends=[BackendStatus(backend=r.backend, ready=r.ready,
                                              reason=r.reason, detail=r.detail)
                                for r in results])
