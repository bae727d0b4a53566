"""The built-in audit sink: every audit event as a structlog event on ``zengine.audit``."""

from __future__ import annotations

import dataclasses

import structlog

from zengine import hookimpl
from zengine.models import AuditEvent

log = structlog.get_logger("zengine.audit")


@hookimpl
def zengine_audit(event: AuditEvent) -> None:
    fields = dataclasses.asdict(event)
    name = fields.pop("event")
    log.info(f"audit.{name}", **fields)
