"""zengine's log lines, fast: the JSON line the full processor chain of :mod:`zengine.log`
makes, in one pass (:func:`render_json`), the engines' access lines written straight to
the line handler (:func:`log_direct`), and a structlog event without structlog's call
machinery (:func:`log_event`). ``tests/test_log_fast.py`` compares the bytes."""

from __future__ import annotations

import contextvars
import json
import logging
import math
import time
from typing import Any

import structlog
from pydantic import SecretStr
from structlog._config import BoundLoggerLazyProxy

from zengine.log import (
    REDACTED,
    DirectLogger,
    LineHandler,
    _line,
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
_SLOW_KEYS = frozenset({"exc_info", "stack_info", "exception", "stack"})
#: Per key, decided once: its sanitised name, whether its value is a secret, and the name as
#: JSON with the separator (``"key": ``), the part of a fragment every line repeats.
_KEY_PLAN: dict[str, tuple[str, bool, str]] = {}
#: ``"key": value`` as JSON, for a (key, value) of one type seen before whose value redaction
#: and sanitising left as it was (so no secret is kept here that the line itself would not
#: print). One table per type, looked up by the dict's own item: 1 and True are equal (and
#: hash alike) in Python, not in JSON. A line's fields repeat from request to request (the
#: user, the client, the outcome); only a few never do (:data:`_VOLATILE`, not kept).
#: Emptied when full.
_FRAGMENTS: dict[type, dict[tuple[str, Any], str]] = {
    str: {}, int: {}, bool: {}, type(None): {}}
_MAX_FRAGMENTS = 8192
_VOLATILE = frozenset({"timestamp", "request_id", "duration_ms"})
#: Per volatile key, its last string value (that very object) and its fragment, kept as
#: :data:`_FRAGMENTS` keeps one (the value printed as it is): each of a request's lines
#: carries its id, one string in the context, and only the first line makes its fragment.
_LAST_VOLATILE: dict[str, tuple[str, str]] = {}
#: Per context variable: ``(key,)`` for structlog's (its name without the prefix), ``()``
#: for any other; decided once per variable (a line reads every variable of the context).
_CONTEXT_KEYS: dict[contextvars.ContextVar[Any], tuple[str, ...]] = {}
_ENCODE_STR = json.encoder.encode_basestring_ascii
_INFINITE = (math.inf, -math.inf)


def _plan(key: str) -> tuple[str, bool, str]:
    plan = _KEY_PLAN.get(key)
    if plan is None:
        name = sanitise_text(str(key), limit=64)
        plan = (name, _secret_key(str(key)), _ENCODE_STR(name) + ": ")
        if len(_KEY_PLAN) < 4096:  # keys come from code; a flood of new ones is not cached
            _KEY_PLAN[key] = plan
    return plan


def _context_key(var: contextvars.ContextVar[Any]) -> tuple[str, ...]:
    name = var.name
    entry = (name[len(_CONTEXT_PREFIX):],) if name.startswith(_CONTEXT_PREFIX) else ()
    if len(_CONTEXT_KEYS) < 1024:  # variables are made once each; a flood is not cached
        _CONTEXT_KEYS[var] = entry
    return entry


#: The encoder (``_Output.encode``) last seen, and whether its answer for a str, int, bool,
#: None or finite float is the C string encoder's or the type's repr: a plain
#: ``json.JSONEncoder`` with ``ensure_ascii`` (what ``encode`` and its one-shot C encoder do
#: for these types), so a value's JSON skips ``encode`` and the C encoder made per call.
_PLAIN_ENCODER: tuple[Any, bool] = (None, False)


def _plain(encode: Any) -> bool:
    global _PLAIN_ENCODER
    if _PLAIN_ENCODER[0] is not encode:
        encoder = getattr(encode, "__self__", None)
        plain = type(encoder) is json.JSONEncoder and getattr(encode, "__func__", None) \
            is json.JSONEncoder.encode and bool(getattr(encoder, "ensure_ascii", False))
        _PLAIN_ENCODER = (encode, plain)
    return _PLAIN_ENCODER[1]


def _value_json(value: Any, encode: Any, plain: bool) -> str:
    if plain:
        kind = type(value)
        if kind is str:
            text: str = _ENCODE_STR(value)
            return text
        if value is None:
            return "null"
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return int.__repr__(value)
        if kind is float and value == value and value not in _INFINITE:
            return float.__repr__(value)
    result: str = encode(value)
    return result


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
    if not _SLOW_KEYS.isdisjoint(event_dict):
        return None
    keys = _CONTEXT_KEYS
    # structlog's merge_contextvars: the context's order, a value of ``...`` is unset.
    for var, value in contextvars.copy_context().items():
        entry = keys.get(var)
        if entry is None:
            entry = _context_key(var)
        if entry and value is not Ellipsis:
            event_dict.setdefault(entry[0], value)
    event_dict["level"] = _LEVELS.get(method_name, method_name)
    event_dict["logger"] = logger_name
    stamp = iso_utc(time.time_ns())
    # Usually the line's last key, a known name and a safe value: its fragment is built
    # here; a "timestamp" field or context value keeps its place and goes the usual way.
    known = _PLAIN_ENCODER
    plain = known[1] if known[0] is encode else _plain(encode)
    last = plain and "timestamp" not in event_dict
    if not last:
        event_dict["timestamp"] = stamp
    # JSON of a dict is its items' fragments joined: the same bytes as encoding the whole.
    parts = []
    tables = _FRAGMENTS
    for item in event_dict.items():
        value = item[1]
        table = tables.get(type(value))
        fragment = table.get(item) if table is not None else None
        if fragment is None:
            key = item[0]
            if key in volatile:
                last_value = _LAST_VOLATILE.get(key)
                if last_value is not None and last_value[0] is value:
                    parts.append(last_value[1])
                    continue
            name, secret, prefix = _plan(key)
            if name != key:
                # Two keys could sanitise to one name: the dict below keeps one, as before.
                event_dict["timestamp"] = stamp
                return _render_dict(event_dict, encode)
            clean = _clean(key, value, secret)
            fragment = (prefix if plain else encode(name) + ": ") \
                + _value_json(clean, encode, plain)
            if table is not None and clean == value and type(clean) is type(value):
                if key not in volatile:
                    if len(table) >= _MAX_FRAGMENTS:
                        table.clear()
                    table[item] = fragment
                elif type(value) is str:
                    _LAST_VOLATILE[key] = (value, fragment)
        parts.append(fragment)
    if last:
        parts.append(f'"timestamp": "{stamp}"')
    return "{" + ", ".join(parts) + "}"


def _render_dict(event_dict: dict[str, Any], encode: Any) -> str:
    clean = {}
    for key, value in event_dict.items():
        name, secret, _ = _plan(key)
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


#: The levels :func:`log_event` takes (structlog's method names), and below which each of
#: structlog's filtering bound loggers (``make_filtering_bound_logger``) drops a line.
_LEVEL_NUMBERS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                  "error": logging.ERROR, "critical": logging.CRITICAL}
_FLOORS: dict[type, int] = {
    structlog.make_filtering_bound_logger(level): level
    for level in (logging.NOTSET, *_LEVEL_NUMBERS.values())}


def log_event(logger: object, level: str, event: str, fields: dict[str, Any]) -> None:
    """``getattr(logger, level)(event, **fields)``: the same line, or none, for a logger from
    ``structlog.get_logger``, without structlog's call machinery (its proxy's attribute
    lookup, the method, two keyword packings, the event's dict copy: about as much as the
    rendering) when the logger is one zengine's configuration made: a filtering bound
    logger whose only processor is zengine's and whose logger writes to the line handler.
    Anything else (another configuration, a test's ``capture_logs``, a level not in
    ``_LEVEL_NUMBERS``) goes through ``logger`` as usual. ``fields`` becomes the event's
    dict (its keys, then ``event``): pass one of its own. For a request's own lines
    (``provision.request``, the audit plugin's), docs/plugins.md."""
    bound = logger.bind() if type(logger) is BoundLoggerLazyProxy else logger
    floor = _FLOORS.get(type(bound))
    number = _LEVEL_NUMBERS.get(level)
    if floor is None or number is None or "event" in fields:
        getattr(logger, level)(event, **fields)  # (an "event" field: structlog's TypeError)
        return
    if number < floor:
        return  # the bound logger's method for this level does nothing
    direct = getattr(bound, "_logger", None)
    processors = getattr(bound, "_processors", None)
    context = getattr(bound, "_context", None)
    if type(direct) is not DirectLogger or type(processors) is not list \
            or len(processors) != 1 or processors[0] is not _line or type(context) is not dict:
        getattr(logger, level)(event, **fields)
        return
    # What structlog's BoundLoggerBase._process_event does: the bound values, the fields,
    # the event, the one processor, the logger's method for the level (info and below held
    # with the request's lines, a warning or worse at once).
    event_dict = {**context, **fields} if context else fields
    event_dict["event"] = event
    getattr(direct, level)(_line(direct, level, event_dict))
