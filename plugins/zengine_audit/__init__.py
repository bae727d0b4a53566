"""The built-in audit sink: every audit event as a structlog event on ``zengine.audit`` and,
with ``[plugins.audit] store`` on, as a row in a SQL table (the SQL backend's database, or an
embedded SQLite file) kept ``keep_days`` days.

Rows are written off the request path by a background thread in batches; the typed query
other plugins (the admin API, the console) call is :mod:`zengine_audit.api`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from zengine import hookimpl
from zengine.api import log_event
from zengine.models import AuditEvent, PluginSettingsSpec
from zengine.runtime import Runtime
from zengine_audit.api import AuditService
from zengine_audit.settings import PLUGIN_NAME, AuditSettings

log = structlog.get_logger("zengine.audit")
_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEvent) if f.name != "event")
_SIZE = len(_FIELDS) + 1


@hookimpl
def zengine_plugin_settings() -> PluginSettingsSpec:
    return PluginSettingsSpec(PLUGIN_NAME, AuditSettings)


# After the SQL plugin's startup, whose engine the store may share.
@hookimpl(trylast=True)
def zengine_startup(runtime: Runtime) -> None:
    service = AuditService(runtime, runtime.config(PLUGIN_NAME, AuditSettings))
    service.check()
    # A tenant's runtime (started after the global one) writes through the global service
    # when its store is the same: one writer thread and one queue per process, not one per
    # tenant; rows carry the event's tenant either way.
    shared = runtime.root.state.get(PLUGIN_NAME) if runtime.root is not None else None
    if isinstance(shared, AuditService) and shared.same_store(service):
        runtime.state[PLUGIN_NAME] = shared
        return
    service.start()
    runtime.state[PLUGIN_NAME] = service


# Before the SQL plugin disposes of the engine the store may share: what is queued is
# written first.
@hookimpl(tryfirst=True)
def zengine_shutdown(runtime: Runtime) -> None:
    service = runtime.state.pop(PLUGIN_NAME, None)
    if isinstance(service, AuditService) and service.runtime is runtime:
        service.close()


@hookimpl
def zengine_audit(event: AuditEvent, runtime: Runtime) -> None:
    service = runtime.state.get(PLUGIN_NAME)
    if isinstance(service, AuditService):
        service.record(event)
        if not service.config.log:
            return
    # log.info(f"audit.{event.event}", **fields)'s line, without structlog's call machinery.
    log_event(log, "info", f"audit.{event.event}", _fields(event))


def _fields(event: AuditEvent) -> dict[str, Any]:
    """The event's fields but ``event``, in their order. A shallow copy: the fields are plain
    values, and asdict's deep copy costs more than the log line itself on the request path.
    An AuditEvent's ``__dict__`` holds exactly its fields in their order (a frozen dataclass
    sets them in ``__init__``): copied whole, a third of the cost of reading them one by one;
    a subclass (more fields) or an attribute set since, field by field."""
    values = getattr(event, "__dict__", None)
    if type(event) is AuditEvent and type(values) is dict and len(values) == _SIZE:
        fields: dict[str, Any] = values.copy()
        del fields["event"]
        return fields
    return {name: getattr(event, name) for name in _FIELDS}


@hookimpl
def zengine_inline_safe() -> bool:
    # A log line, written like the engine's access line, which runs on the loop anyway.
    return True
