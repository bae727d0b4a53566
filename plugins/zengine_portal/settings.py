"""``[plugins.portal]``: the self-service page's settings."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from zengine.webforms import SessionSettings
from zengine_tokens.settings import Duration

# Validated here so that a colour can be written into the theme stylesheet as it is: nothing
# but a hex colour can reach CSS.
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")


class PortalSettings(SessionSettings):
    #: The page is off unless an operator turns it on.
    enabled: bool = False
    #: Where the page is served; its forms and files live below it.
    path: str = "/portal"
    #: Page title and heading.
    title: str = Field("Set up Zoiper", min_length=1, max_length=80)
    #: A PNG, JPEG, WebP or SVG file shown above the heading; relative to the config file.
    logo: Path | None = None
    #: Buttons, links and the heading bar.
    accent_color: str = "#0b5cad"
    #: Text on the accent colour.
    accent_text_color: str = "#ffffff"
    background_color: str = "#f4f6f8"
    text_color: str = "#1b1f24"
    #: ``lang`` of the page.
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
    #: Lifetime of a portal-issued token, e.g. ``"30m"``; unset means ``[plugins.tokens] ttl``.
    token_ttl: Duration | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.fullmatch(value):
            raise ValueError("must be an absolute path like '/portal' (letters, digits, "
                             "'.', '_', '~', '-'; no trailing slash)")
        return value

    @field_validator("accent_color", "accent_text_color", "background_color", "text_color")
    @classmethod
    def _color(cls, value: str) -> str:
        if not _COLOR.fullmatch(value):
            raise ValueError("must be a hex colour like '#0b5cad' or '#fff'")
        return value

    @field_validator("token_ttl")
    @classmethod
    def _ttl(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not timedelta(minutes=1) <= value <= timedelta(days=30):
            raise ValueError("must be between 1 minute and 30 days")
        return value
