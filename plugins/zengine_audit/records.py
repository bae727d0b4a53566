"""The audit store's query types, without the database: a server whose store is off (the
default) never imports SQLAlchemy for them (about 25 MB per worker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MAX_LIMIT = 500


class BadCursor(ValueError):
    """A cursor this store did not hand out (or from another query's shape)."""


@dataclass(frozen=True)
class AuditRecord:
    """One stored audit event. Never carries a secret (the events never do)."""

    id: int
    at: datetime
    event: str
    outcome: str
    tenant: str
    username: str | None
    backend: str | None
    client_addr: str | None
    family: str | None
    version: str | None
    account_count: int
    detail: str | None


@dataclass(frozen=True)
class AuditQuery:
    """What to find; every field narrows. Newest first.

    ``events`` and ``outcomes`` match any of their values; an ``events`` value ending in ``*``
    is a prefix (``"login.*"``). ``since`` is inclusive, ``until`` exclusive (aware
    datetimes). ``tenant=None`` is every tenant (an admin without a tenant), ``""`` the
    default tenant. ``cursor`` is :attr:`AuditPage.next_cursor` of the previous page.
    """

    username: str | None = None
    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcomes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    limit: int = 50
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone")


@dataclass(frozen=True)
class AuditPage:
    records: tuple[AuditRecord, ...]
    #: Pass as :attr:`AuditQuery.cursor` for the next (older) page; ``None`` on the last.
    next_cursor: str | None = None
