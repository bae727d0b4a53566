"""zengine's log lines, fast: the JSON line the full processor chain of :mod:`zengine.log`
makes, in one pass (:func:`render_json`), and the engines' access lines written straight to
the line handler (:func:`log_direct`). ``tests/test_log_fast.py`` compares the bytes."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

import structlog
from pydantic import SecretStr

from zengine.log import (
    REDACTED,
    LineHandler,
    _Output,
    _redact_value,
    _sanitise_value,
    _scrub_text,
    _secret_key,
    sanitise_text,
)

#: structlog's contextvars carry this prefix (``structlog.contextvars.bind_contextvars``).
_CONTEXT_PREFIX = structlog.contextvars.STRUCTLOG_KEY_PREFIX
_LEVELS = {"warn": "warning", "exception": "error"}
#: Keys that need the full chain: tracebacks and stacks are formatted (and redacted) there.
_SLOW_KEYS = ("exc_info", "stack_info", "exception", "stack")
#: Per key, decided once: its sanitised name and whether its value is a secret.
_KEY_PLAN: dict[str, tuple[str, bool]] = {}
#: ``"key": value`` as JSON, for a (key, type, value) seen before whose value redaction and
#: sanitising left as it was (so no secret is kept here that the line itself would not
#: print). A line's fields repeat from request to request (the user, the client, the
#: outcome); only a few never do (:data:`_VOLATILE`, not kept). Emptied when full.
_FRAGMENTS: dict[tuple[str, type, Any], str] = {}
_MAX_FRAGMENTS = 8192
_VOLATILE = frozenset({"timestamp", "request_id", "duration_ms"})
_CACHEABLE = (str, int, bool, type(None))


def _plan(key: str) -> tuple[str, bool]:
    plan = _KEY_PLAN.get(key)
    if plan is None:
        plan = (sanitise_text(str(key), limit=64), _secret_key(str(key)))
        if len(_KEY_PLAN) < 4096:  # keys come from code; a flood of new ones is not cached
            _KEY_PLAN[key] = plan
    return plan


def _clean(key: str, value: Any, secret: bool) -> Any:
    """``redact`` then ``sanitise`` for one top-level value, in one step for the usual types
    (the same result as the two passes: ``tests/test_log_fast.py``)."""
    kind = type(value)
    if secret:
        return REDACTED if kind is SecretStr or value not in (None, "") else value
    if kind is str:
        return sanitise_text(_scrub_text(value))
    if kind is int or kind is float or kind is bool or value is None:
        return value
    return _sanitise_value(_redact_value(key, value))


_SECOND: tuple[int, str] = (-1, "")


def iso_utc(ns: int) -> str:
    """``ns`` (``time.time_ns()``) as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes
    it (``datetime.isoformat``: microseconds, none when zero, ``Z``); the date and time of
    day are formatted once a second."""
    global _SECOND
    seconds, rest = divmod(ns, 1_000_000_000)
    second = _SECOND
    if second[0] != seconds:
        second = _SECOND = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    micros = rest // 1000
    return f"{second[1]}.{micros:06d}Z" if micros else f"{second[1]}Z"


def render_json(logger_name: str, method_name: str, event_dict: dict[str, Any],
                volatile: frozenset[str] = _VOLATILE) -> str | None:
    """The JSON line the full chain (contextvars, level, logger, timestamp, redaction,
    sanitising, the renderer) makes of ``event_dict``, in one pass over its keys, byte for
    byte; ``None`` when the line needs the full chain (a traceback, a stack, the console
    format). The chain's ten processor calls and three passes over the keys cost more than
    the line's encoding (docs/benchmarks.md, "The fast path")."""
    encode = _Output.encode
    if encode is None:
        return None
    for key in _SLOW_KEYS:
        if key in event_dict:
            return None
    context = contextvars.copy_context()
    for var in context:
        if var.name.startswith(_CONTEXT_PREFIX) and context[var] is not Ellipsis:
            event_dict.setdefault(var.name[len(_CONTEXT_PREFIX):], context[var])
    event_dict["level"] = _LEVELS.get(method_name, method_name)
    event_dict["logger"] = logger_name
    event_dict["timestamp"] = iso_utc(time.time_ns())
    # JSON of a dict is its items' fragments joined: the same bytes as encoding the whole.
    parts = []
    fragments = _FRAGMENTS
    for key, value in event_dict.items():
        kind = type(value)
        fragment = fragments.get((key, kind, value)) if kind in _CACHEABLE else None
        if fragment is None:
            name, secret = _plan(key)
            if name != key:
                # Two keys could sanitise to one name: the dict below keeps one, as before.
                return _render_dict(event_dict, encode)
            clean = _clean(key, value, secret)
            fragment = f"{encode(name)}: {encode(clean)}"
            if kind in _CACHEABLE and clean == value and type(clean) is kind \
                    and key not in volatile:
                if len(fragments) >= _MAX_FRAGMENTS:
                    fragments.clear()
                fragments[key, kind, value] = fragment
        parts.append(fragment)
    return "{" + ", ".join(parts) + "}"


def _render_dict(event_dict: dict[str, Any], encode: Any) -> str:
    clean = {}
    for key, value in event_dict.items():
        name, secret = _plan(key)
        clean[name] = _clean(key, value, secret)
    line: str = encode(clean)
    return line


def direct_handler(logger: logging.Logger, level: int) -> LineHandler | None:
    """zengine's line handler when a ``level`` record of ``logger`` would reach it and nothing
    else (no other handler, no filter on the way): then the line may skip the stdlib record.
    ``None``: log through ``logger`` as usual."""
    handler = _Output.handler
    if handler is None or not logger.isEnabledFor(level) or handler.filters \
            or level < handler.level:
        return None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        if current.handlers:
            return handler if current.handlers == [handler] and current.parent is None else None
        if not current.propagate:
            return None
        current = current.parent
    return None


_ACCESS_VOLATILE = _VOLATILE | {"event"}


def log_direct(logger: logging.Logger, level: int, message: str) -> bool:
    """Write ``message`` as ``logger``'s line straight to the line handler (the bytes the
    stdlib record would have made, see :func:`direct_handler`); ``False``: nothing written,
    log it through ``logger``. For the engines' access lines, one per request."""
    handler = direct_handler(logger, level)
    if handler is None:
        return False
    # An access line is unique (it carries the request's time): not kept in _FRAGMENTS.
    line = render_json(logger.name, logging.getLevelName(level).lower(), {"event": message},
                       _ACCESS_VOLATILE)
    if line is None:
        return False
    handler.write_line(line + handler.terminator)
    return True
