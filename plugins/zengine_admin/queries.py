"""Query-string parameters of the list operations, as pydantic models (validated like bodies,
documented from the same models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Query(BaseModel):
    # Unknown parameters are ignored, as HTTP clients and proxies add their own.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Paging(Query):
    offset: int = Field(0, ge=0, le=1_000_000)
    limit: int = Field(50, ge=1, le=1000)


class UsersQuery(Paging):
    #: Part of the username (case-insensitive); the exact name for LDAP and mapped tables.
    q: str = Field("", max_length=255)


class TokensQuery(Paging):
    username: str | None = Field(None, min_length=1, max_length=255)


class PreviewQuery(Query):
    family: Literal["mobile", "legacy", "desktop"] | None = None
    #: The client version, as the app would send it (e.g. ``2.10.4``).
    version: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[0-9A-Za-z.\-]+$")


class AuditQuery(Query):
    username: str | None = Field(None, min_length=1, max_length=255)
    #: Comma-separated outcomes, any of which matches (``accepted,refused``).
    outcome: str | None = Field(None, min_length=1, max_length=200)
    #: Comma-separated event names; one ending in ``*`` is a prefix (``login.*,token.*``).
    event: str | None = Field(None, min_length=1, max_length=200)
    #: From this time, inclusive (ISO 8601; without a zone: UTC).
    since: datetime | None = None
    #: Until this time, exclusive.
    until: datetime | None = None
    limit: int = Field(50, ge=1, le=500)
    #: ``next_cursor`` of the previous page.
    cursor: str | None = Field(None, min_length=1, max_length=200)


class LockoutClearQuery(Query):
    #: A username or an address; omitted: every entry the key's tenant holds.
    name: str | None = Field(None, min_length=1, max_length=255)
