"""The help-desk web console (``/console``): find a user, see their accounts and the document
their phone gets, their recent logins and why they failed, clear lockouts, issue a token and
show its QR, revoke tokens.

Off unless ``[plugins.console] enabled = true``. Server-rendered like the portal (its forms,
CSRF tokens, session rules and security headers: :mod:`zengine.webforms`); every operation is
a call into the admin API's service layer (:mod:`zengine_admin.service`) as the signed-in
actor, so scopes, tenants and the audit trail are the API's. Sign-in with an API key, or,
with ``ldap_admin_group`` set, a directory login of a member of that group.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from zengine import hookimpl, webforms
from zengine.models import PluginSettingsSpec
from zengine.runtime import Runtime
from zengine_console.settings import NAME, ConsoleSettings


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, ConsoleSettings)


def _key(config: ConsoleSettings, runtime: Runtime) -> str:
    return webforms.session_key(config.session_key, config.session_key_file, runtime,
                                "plugins.console")


@hookimpl
def zengine_register_routes(runtime: Runtime) -> list[BaseRoute] | None:
    config = runtime.config(NAME, ConsoleSettings)
    if not config.enabled:
        return None
    from zengine_console.views import Console

    console = Console(runtime, config, _key(config, runtime))
    runtime.state[NAME] = console
    return console.routes()
