"""The tokens plugin's service, as the portal uses it."""

from __future__ import annotations

from zengine.errors import ConfigError
from zengine.runtime import Runtime
from zengine_tokens.api import TokenService, qr_svg, token_service

__all__ = ["TokensApi", "qr_svg"]


class TokensApi:
    """Checked once, when the app is built: the portal is useless without the tokens plugin."""

    def __init__(self, runtime: Runtime) -> None:
        if "tokens" not in runtime.hooks.plugin_names():
            raise ConfigError("[plugins.portal] enabled = true needs the tokens plugin, which "
                              "is not loaded (is it in [plugins] disabled?)")
        self._runtime = runtime

    def service(self, tenant: str = "") -> TokenService:
        """The tokens service of ``tenant``'s runtime (the global one for ``""``): it looks
        the user up, and keys the token, in that tenant."""
        # The service exists once the tokens plugin has started.
        return token_service(self._runtime.for_tenant(tenant) or self._runtime)
