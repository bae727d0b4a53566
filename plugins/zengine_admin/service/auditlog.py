"""Stored audit events, queried by user, time range, outcome and event, paged by cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from zengine_admin.models import AuditEntry, AuditPageView
from zengine_admin.problems import Invalid, NotFound, Problem
from zengine_admin.service.base import Actor, backend_errors, scoped

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _aware(name: str, value: datetime | None) -> datetime | None:
    """``value`` in UTC (naive: UTC already). A valid time with an offset can leave the
    calendar in UTC (9999-12-31T23:59:59-23:59): a 422 naming it, not an OverflowError."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Invalid(name, "out of range once converted to UTC") from None


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@scoped
def audit_events(runtime: Runtime, actor: Actor, *, username: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 outcomes: str | None = None, events: str | None = None, limit: int = 50,
                 cursor: str | None = None) -> AuditPageView:
    """Stored audit events, newest first, narrowed by user, time range (``since``
    inclusive, ``until`` exclusive; naive times are UTC), outcomes and events (comma-separated;
    an event ending in ``*`` is a prefix); ``cursor`` pages on. An actor bound to a tenant
    sees that tenant's events; an all-tenants actor every tenant's, or one tenant's with
    ``target`` (``?tenant=``)."""
    actor.require("read")
    from zengine_audit.api import AuditQuery, AuditStoreOff, BadCursor, audit_service

    root = runtime.for_tenant("") or runtime
    try:
        service = audit_service(root)
    except RuntimeError:
        raise NotFound("the audit plugin is not running") from None
    if actor.tenant is not None:
        tenant: str | None = actor.tenant
    else:
        tenant = actor.target or (None if runtime is root else runtime.tenant)
    try:
        query = AuditQuery(username=username, tenant=tenant, since=_aware("since", since),
                           until=_aware("until", until), outcomes=_split(outcomes),
                           events=_split(events), limit=limit, cursor=cursor)
        page = backend_errors(lambda: service.query(query))
    except AuditStoreOff:
        raise NotFound("the audit store is off: set [plugins.audit] store to keep events "
                       "in a database") from None
    except BadCursor as exc:
        raise Invalid("cursor", str(exc)) from None
    except ValueError as exc:
        raise Problem(str(exc)) from None
    return AuditPageView(items=[AuditEntry(
        id=r.id, time=r.at, event=r.event, outcome=r.outcome, tenant=r.tenant,
        username=r.username, backend=r.backend, client_addr=r.client_addr, family=r.family,
        version=r.version, account_count=r.account_count, detail=r.detail)
        for r in page.records], next_cursor=page.next_cursor)
