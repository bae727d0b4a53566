"""The ``[plugins.tokens]`` table: endpoint, store, token lifetime, OEM link."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

PLUGIN_NAME = "tokens"

_DURATION = re.compile(r"(?P<n>\d{1,9})\s*(?P<unit>[smhdw]?)", re.ASCII)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``72h``, ``30m``, ``7d``, ``90s``, ``1w`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is not None:
            return timedelta(seconds=int(match["n"]) * _UNITS[match["unit"]])
    raise ValueError(f"not a duration: {value!r}; write e.g. 72h, 30m, 7d or a number of "
                     "seconds")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class TokensSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: URL path of the token endpoint; Zoiper appends the token to ``token_url``.
    path: str = "/token"
    #: Query parameter that carries the token (``token_url`` ends with ``?<param>=``).
    param: str = Field("id", pattern=r"^[A-Za-z0-9_]{1,32}$")
    #: ``auto``: the SQL backend's database when ``[plugins.sql]`` is configured, else the
    #: embedded SQLite file; ``sql`` or ``sqlite`` to choose.
    store: Literal["auto", "sql", "sqlite"] = "auto"
    #: The embedded SQLite file (created 0600), relative to the config file.
    sqlite_path: Path = Path("zengine-tokens.db")
    #: Lifetime of a new token.
    ttl: Duration = timedelta(hours=72)
    #: Fetches a new token allows.
    max_uses: int = Field(1, ge=1, le=1000)
    #: A fetch from the same address within this time of the last use gets the same answer
    #: again (a client that retries), without counting as a use; ``0`` turns it off.
    replay_window: Duration = timedelta(seconds=60)
    #: What the endpoint answers: Zoiper's token document (SIP username, password and
    #: authentication username), or the account's ``full`` document for the client's family.
    reply: Literal["credentials", "full"] = "credentials"
    #: HTTP status of the one answer for an unknown, expired, used or revoked token.
    refused_status: int = Field(200, ge=200, le=599)
    #: The ``token_url`` documents get; default ``[server] public_url`` + ``path`` + ``?id=``.
    token_url: str | None = None
    #: Put a freshly issued token into each account of a document whose ``token_url`` is this
    #: server's token URL (and whose account has no static ``token``). Off by default: a phone
    #: fetches its document at every app start, so this is a database write per start, a row
    #: per start until ``tokens purge``, and no document cache.
    issue_in_documents: bool = False
    #: Zoiper OEM provider id for the QR-howto link (``provider_id=``).
    provider_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: The OEM QR-howto page the link points at.
    qr_howto_url: str = "https://oem.zoiper.com/qr-howto.php"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError(f"path {value!r} must start with '/' and carry no query")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=366):
            raise ValueError("ttl must be between 1 minute and 366 days")
        return value

    @field_validator("replay_window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= timedelta(minutes=10):
            raise ValueError("replay_window must be between 0 and 10 minutes")
        return value

    @field_validator("token_url", "qr_howto_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/?#]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value
