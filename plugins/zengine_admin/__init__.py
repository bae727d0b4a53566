"""The admin REST API (``/api/v1``) for operators and billing systems, with API keys.

Off unless ``[plugins.admin] enabled = true``; ``zengine apikeys`` manages keys either way.
Layers, each usable on its own:

* :mod:`zengine_admin.keys`: the key store (create, list, revoke, check).
* :mod:`zengine_admin.auth`: a request's key to an :class:`~zengine_admin.service.Actor`,
  through the login guard, in constant time.
* :mod:`zengine_admin.service`: typed operations (users, tokens, lockouts, preview...) the
  API and the web console call; see its docstring.
* :mod:`zengine_admin.problems`: ``application/problem+json`` errors naming the field.
* :mod:`zengine_admin.api`: the Starlette routes and the OpenAPI document.

See docs/api.md.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from zengine import hookimpl
from zengine.models import Command, PluginSettingsSpec
from zengine.runtime import Runtime
from zengine_admin.keys import KeyStore, key_store
from zengine_admin.settings import NAME, AdminSettings


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, AdminSettings)


# After the SQL plugin's startup, whose engine the key store may share.
@hookimpl(trylast=True)
def zengine_startup(runtime: Runtime) -> None:
    key_store(runtime)


# Before the SQL plugin disposes of the engine the key store may share.
@hookimpl(tryfirst=True)
def zengine_shutdown(runtime: Runtime) -> None:
    store = runtime.state.pop(f"{NAME}.keys", None)
    if isinstance(store, KeyStore):
        store.close()


@hookimpl
def zengine_register_routes(runtime: Runtime) -> list[BaseRoute] | None:
    if not runtime.config(NAME, AdminSettings).enabled:
        return None
    from zengine_admin.api import routes

    return routes(runtime)


@hookimpl
def zengine_cli_commands() -> list[Command]:
    from zengine_admin.cli import commands

    return commands()
