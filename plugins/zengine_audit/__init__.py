"""The built-in audit sink: every audit event as a structlog event on ``zengine.audit``."""

from __future__ import annotations

import dataclasses

import structlog

from zengine import hookimpl
from zengine.models import AuditEvent

log = structlog.get_logger("zengine.audit")
_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEvent) if f.name != "event")


@hookimpl
def zengine_audit(event: AuditEvent) -> None:
    # A shallow copy: the fields are plain values, and asdict's deep copy costs more than the
    # log line itself on the request path.
    fields = {name: getattr(event, name) for name in _FIELDS}
    log.info(f"audit.{event.event}", **fields)
