"""``[plugins.console]``: the help-desk web console's settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from zengine.webforms import SessionSettings

NAME = "console"
_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")


class ConsoleSettings(SessionSettings):
    #: The console is off unless an operator turns it on.
    enabled: bool = False
    #: Where the console is served; its forms and files live below it.
    path: str = "/console"
    #: Page title.
    title: str = Field("zengine console", min_length=1, max_length=80)
    #: With the LDAP backend: members of this group (its name or DN, compared without regard
    #: to case) may sign in with their directory login, bound as themselves. Unset: API keys
    #: only.
    ldap_admin_group: str | None = Field(None, min_length=1, max_length=1024)
    #: What a directory admin may do (an API key's scope: ``read``, ``tokens`` or ``write``).
    ldap_scope: Literal["read", "tokens", "write"] = "write"
    #: Recent audit events shown per page on a user's page.
    audit_page: int = Field(20, ge=5, le=200)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.fullmatch(value):
            raise ValueError("must be an absolute path like '/console' (letters, digits, "
                             "'.', '_', '~', '-'; no trailing slash)")
        return value
