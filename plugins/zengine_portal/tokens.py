"""The part of the tokens plugin's Python API the portal uses.

Typed as a protocol so the portal depends on the interface, not on the plugin's internals.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any, Protocol, cast

from zengine.errors import ConfigError
from zengine.runtime import Runtime


class IssuedToken(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def expires(self) -> datetime: ...
    @property
    def max_uses(self) -> int: ...
    @property
    def link(self) -> str: ...


class TokenService(Protocol):
    def issue(self, username: str, *, tenant: str = "", account: str | None = None,
              ttl: Any = None, uses: int | None = None, revoke_older: bool = True,
              actor: str = "cli", client_addr: str | None = None) -> IssuedToken: ...

    def revoke_user(self, username: str, *, tenant: str = "", actor: str = "cli") -> int: ...


class TokensApi:
    """``zengine_tokens.api``, looked up once at startup."""

    def __init__(self, runtime: Runtime) -> None:
        if "tokens" not in runtime.hooks.plugin_names():
            raise ConfigError("[plugins.portal] enabled = true needs the tokens plugin, which "
                              "is not loaded (is it in [plugins] disabled?)")
        module: Any = importlib.import_module("zengine_tokens.api")
        self._runtime = runtime
        self._module = module

    def service(self) -> TokenService:
        return cast(TokenService, self._module.token_service(self._runtime))

    def qr_svg(self, text: str) -> str:
        return cast(str, self._module.qr_svg(text))
