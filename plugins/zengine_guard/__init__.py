"""Login guard: smart lockout per (tenant, username), per-address and per-tenant limits,
allow/deny lists, a security log line per refused login, shared across workers through Redis.

Everything goes through the core's contract (``zengine_login_check`` /
``zengine_login_result`` / ``zengine_shared_store``); see docs/security.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from zengine import hookimpl
from zengine.models import Command, LoginAttempt, LoginResult, PluginSettingsSpec, Readiness
from zengine.runtime import Runtime
from zengine.store import SharedStore
from zengine_guard.guard import NAME, Guard
from zengine_guard.settings import GuardSettings


def _guard(runtime: Runtime) -> Guard | None:
    """The runtime's guard, built on first use (the store hook runs before startup)."""
    config = runtime.config(NAME, GuardSettings)
    if not config.enabled:
        return None
    guard = runtime.state.get(NAME)
    if guard is None:
        guard = runtime.state[NAME] = Guard(config, runtime)
    assert isinstance(guard, Guard)  # noqa: S101 - only this module writes the slot
    return guard


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, GuardSettings)


@hookimpl
def zengine_shared_store(runtime: Runtime) -> SharedStore | None:
    guard = _guard(runtime)
    if guard is None or guard.redis_client is None:
        return None
    from zengine_guard.store import RedisStore

    return RedisStore(guard.redis_client, guard.config.key_prefix)  # type: ignore[arg-type]


@hookimpl
def zengine_readiness(runtime: Runtime) -> list[Readiness] | None:
    """Redis, when configured, answers a PING (within ``redis_timeout``)."""
    guard = runtime.state.get(NAME)
    if not isinstance(guard, Guard) or guard.redis_client is None:
        return None
    import redis

    try:
        guard.redis_client.ping()  # type: ignore[attr-defined]
    except redis.RedisError as exc:
        # The exception text may carry the URL; the type says enough.
        return [Readiness("redis", False, "redis unreachable", type(exc).__name__)]
    return [Readiness("redis", True)]


@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    guard = _guard(runtime)
    if guard is not None and not runtime.tenant:
        from zengine.offload import PROVISION_THREADS

        # One per provisioning thread, each of which holds one at a time; the root runtime's
        # guard only: each tenant's runtime has a guard (and a pool) of its own, and 40 per
        # tenant and worker would add up to Redis's client limit (review). A tenant's pool
        # opens them as its logins need them, as redis-py does.
        guard.open_connections(PROVISION_THREADS)


@hookimpl
def zengine_shutdown(runtime: Runtime) -> None:
    guard = runtime.state.pop(NAME, None)
    if isinstance(guard, Guard):
        guard.close()


@hookimpl
def zengine_inline_safe(runtime: Runtime) -> bool:
    """In-process counters are a few dictionary steps under a lock held for no I/O; Redis
    round trips are not for the event loop."""
    guard = _guard(runtime)
    return guard is None or guard.redis_client is None


@hookimpl
def zengine_login_check(attempt: LoginAttempt, runtime: Runtime) -> None:
    guard = _guard(runtime)
    if guard is not None:
        guard.check(attempt, runtime.logins)


@hookimpl
def zengine_login_verification(attempt: LoginAttempt, runtime: Runtime) -> None:
    guard = _guard(runtime)
    if guard is not None:
        guard.verification(attempt)


@hookimpl
def zengine_login_result(attempt: LoginAttempt, result: LoginResult, runtime: Runtime) -> None:
    guard = _guard(runtime)
    if guard is not None:
        guard.record(attempt, result)


# -- zengine lockouts ---------------------------------------------------------------------

def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser(
        "list", help="accounts and addresses with failures or a lockout",
        description="List accounts and addresses with failed logins in the window, and how "
                    "long each account stays locked.")
    clear = sub.add_parser(
        "clear", help="forget failures and lockouts (of one USER or ADDRESS, or all)",
        description="Forget the failures and lockouts of USER or ADDRESS (an address also "
                    "loses its failures inside every account); without one, of everybody.")
    clear.add_argument("name", nargs="?", metavar="USER|ADDRESS",
                       help="one user name or client address (default: all)")
    for child in (listing, clear):
        child.add_argument("--tenant", default=None,
                           help="only this tenant (default: every tenant)")
        # After the action too, as the other plugin commands take it; SUPPRESS keeps the
        # value given before the action.
        child.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                           help="config file (default: $ZENGINE_CONFIG)")


def _run(args: argparse.Namespace, runtime: Runtime) -> int:
    guard = _guard(runtime)
    if guard is None:
        print("zengine: the guard is disabled ([plugins.guard] enabled = false)",
              file=sys.stderr)
        return 1
    if guard.redis_client is None:
        # Without Redis the counters live inside the running server process only.
        print("zengine: lockouts are kept in the server's memory; set [plugins.guard] "
              "redis_url to list or clear them from the command line (restarting the server "
              "clears them)", file=sys.stderr)
        return 1
    if args.action == "list":
        entries = [e for e in guard.state.entries(time.time())
                   if args.tenant is None or e.tenant == args.tenant]
        if not entries:
            print("no failures or lockouts")
        for e in entries:
            locked = f"locked {int(e.locked_for)}s" if e.locked_for else "not locked"
            tenant = f"[{e.tenant}] " if e.tenant else ""
            print(f"{e.kind:8} {tenant}{e.name}: {e.failures} distinct failures, {locked}")
        return 0
    removed = guard.state.clear(args.name, args.tenant)
    print(f"cleared {removed} entries" + (f" for {args.name}" if args.name else ""))
    return 0


@hookimpl
def zengine_cli_commands() -> list[Command]:
    return [Command(name="lockouts", help="list or clear login lockouts (guard plugin)",
                    configure=_configure, run=_run)]
