"""The self-service page: an end user signs in with their provisioning login and gets a fresh
one-time token as a QR code, to set up a phone without typing a password.

Off unless ``[plugins.portal] enabled = true``; needs the ``tokens`` plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.routing import BaseRoute

from zengine import hookimpl, webforms
from zengine.models import PluginSettingsSpec
from zengine.runtime import Runtime
from zengine_portal.settings import PortalSettings

if TYPE_CHECKING:
    from zengine_portal.views import Portal

NAME = "portal"
log = structlog.get_logger("zengine.portal")


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(NAME, PortalSettings)


def _portal(runtime: Runtime, config: PortalSettings) -> Portal:
    # The pages and Jinja2 (~3 MB per worker) are imported only when the portal is on.
    from zengine_portal.views import Portal

    return Portal(runtime, config, session_key(config, runtime))


def session_key(config: PortalSettings, runtime: Runtime) -> str:
    """The key that signs session cookies: from the config or its file, else a random one."""
    return webforms.session_key(config.session_key, config.session_key_file, runtime,
                                "plugins.portal")


@hookimpl
def zengine_register_routes(runtime: Runtime) -> list[BaseRoute] | None:
    config = runtime.config(NAME, PortalSettings)
    if not config.enabled:
        return None
    portal = _portal(runtime, config)
    runtime.state[NAME] = portal
    return portal.routes()



@hookimpl
def zengine_startup(runtime: Runtime) -> None:
    config = runtime.config(NAME, PortalSettings)
    if config.enabled and NAME not in runtime.state:
        # Started without the app (``zengine check-config``): check all that building the
        # page checks (tokens plugin, logo, session key), so a bad setup is found before
        # ``serve``.
        _portal(runtime, config)
