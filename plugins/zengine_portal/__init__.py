"""The self-service page: an end user signs in with their provisioning login and gets a fresh
one-time token as a QR code, to set up a phone without typing a password.

Off unless ``[plugins.portal] enabled = true``; needs the ``tokens`` plugin.
"""

from __future__ import annotations

import secrets

import structlog
from starlette.routing import BaseRoute

from zengine import hookimpl
from zengine.errors import ConfigError
from zengine.models import PluginSettingsSpec
from zengine.runtime import Runtime
from zengine.settings import resolve_secret
from zengine_portal.settings import PortalSettings
from zengine_portal.views import Portal

NAME = "portal"
log = structlog.get_logger("zengine.portal")


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, PortalSettings)


def session_key(config: PortalSettings, runtime: Runtime) -> str:
    """The key that signs session cookies: from the config or its file, else a random one."""
    where = f"{runtime.settings.source} [plugins.portal]"
    secret = resolve_secret(config.session_key, config.session_key_file, runtime.settings,
                            f"{where} session_key")
    if secret is not None:
        key = secret.get_secret_value()
        if len(key) < 32:
            raise ConfigError(f"{where} session_key_file: the key must be at least 32 "
                              "characters")
        return key
    if runtime.settings.server.workers > 1:
        # Each worker would make its own key and refuse the others' cookies.
        raise ConfigError(f"{where}: with [server] workers > 1 set session_key or "
                          "session_key_file, so that every worker signs sessions alike")
    log.warning("portal.session_key_generated",
                hint="set [plugins.portal] session_key_file (or ZENGINE_PLUGINS__PORTAL__"
                     "SESSION_KEY) to keep portal sessions across restarts")
    return secrets.token_urlsafe(32)


@hookimpl
def zengine_register_routes(runtime: Runtime) -> list[BaseRoute] | None:
    config = runtime.config(NAME, PortalSettings)
    if not config.enabled:
        return None
    portal = Portal(runtime, config, session_key(config, runtime))
    runtime.state[NAME] = portal
    return portal.routes()



@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, PortalSettings)
    if config.enabled and NAME not in runtime.state:
        # Started without the app (``zengine check-config``): check all that building the
        # page checks (tokens plugin, logo, session key), so a bad setup is found before
        # ``serve``.
        Portal(runtime, config, session_key(config, runtime))
