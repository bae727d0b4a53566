"""structlog setup, configured once at startup, with a redaction processor that every log line
(zengine's, the plugins', hypercorn's) passes through."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import select
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

from zengine.settings import LoggingSettings

REDACTED = "**redacted**"
_SECRET_KEYS = re.compile(
    r"pass(word|wd)?|secret|token|bind_password|authorization|credential|cookie|^p$|query",
    re.IGNORECASE,
)
# Safety net for free text (exception messages, third-party lines): key=value and Basic headers.
_SECRET_TEXT = re.compile(
    r"(?i)((?:pass(?:word|wd)?|p|secret|token|bind_password)=)[^&\s\"']*"
    r"|(authorization:\s*\w+\s+)\S+"
    r"|(\?)(?=[^\s\"']*=)[^\s\"']*"
)


def _replace(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2) or match.group(3) or ""
    return prefix + REDACTED


def _scrub_text(text: str) -> str:
    # Every pattern needs a "=" or "authorization": most values (names, paths, timestamps)
    # have neither, and skipping the regex for them halves the cost of a log line.
    if "=" not in text and "authorization" not in text.lower():
        return text
    return _SECRET_TEXT.sub(_replace, text)


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    # Log lines reuse a few dozen keys: decide each once.
    return _SECRET_KEYS.search(key) is not None


_PLAIN = (int, float, bool, type(None))


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if _secret_key(key):
        return REDACTED if value not in (None, "") else value
    if type(value) in _PLAIN:
        return value
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask secret-named keys, secret-typed values and secret-looking text in messages."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


#: What a log line must never carry raw: C0 and C1 controls (ESC starts terminal escapes, CR
#: and LF forge lines), DEL, line and paragraph separators, lone surrogates, bidi overrides.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")
#: Tracebacks keep their line breaks; nothing else does.
_UNSAFE_MULTILINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029"
                               "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: Longest logged string value (a whole traceback is exempt).
MAX_VALUE_CHARS = 512


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitise_text(text: str, *, multiline: bool = False, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` with every control character escaped (``\\x1b``) and cut to ``limit``."""
    if text.isprintable() and (not limit or len(text) <= limit):
        # Nothing to do for almost every value: a C loop instead of a regex pass (every
        # character the pattern escapes is one that isprintable() refuses).
        return text
    clean = (_UNSAFE_MULTILINE if multiline else _UNSAFE).sub(_escape, text)
    if limit and len(clean) > limit:
        clean = clean[:limit] + f"...({len(clean) - limit} more)"
    return clean


def _sanitise_value(value: Any) -> Any:
    if isinstance(value, str):
        return sanitise_text(value)
    if isinstance(value, bytes | bytearray):
        return sanitise_text(bytes(value).decode("utf-8", "backslashreplace"))
    if isinstance(value, Mapping):
        return {sanitise_text(str(k), limit=64): _sanitise_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_sanitise_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return sanitise_text(str(value))


def sanitise(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Escape control characters in every key and value and bound their length, so no client
    value can forge a line, move a terminal cursor or flood the log (JSON and console)."""
    clean: dict[str, Any] = {}
    for key, value in event_dict.items():
        name = sanitise_text(str(key), limit=64)
        if key in ("exception", "stack") and isinstance(value, str):
            clean[name] = sanitise_text(value, multiline=True, limit=0)
        else:
            clean[name] = _sanitise_value(value)
    event_dict.clear()
    event_dict.update(clean)
    return event_dict


def redact_exception(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The second pass, after tracebacks are formatted: only their text is new."""
    if "exception" in event_dict:
        event_dict["exception"] = _redact_value("exception", event_dict["exception"])
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that formats *outside* its lock, so that the event loop's access log
    and a worker thread's request log never wait for each other's formatting; only the write
    of the finished line is serialised."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        # Without a stream of its own the handler writes to whatever ``sys.stderr`` is at the
        # time of the line: a command run in process (tests, embedding) that replaced
        # ``sys.stderr`` and gave it back must not leave every later line on a dead stream.
        self.follow_stderr = stream is None

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return False
        self.write_line(line, record)
        return True

    def write_line(self, line: str, record: logging.LogRecord | None = None,
                   hold: bool = True) -> None:
        held = _HELD.get()
        # Inside held_lines(), in the thread that entered it (a context copied into another
        # thread shares the buffer, not the block): kept for one write with the request's
        # other lines, unless released meanwhile (the request answered at its deadline).
        if held is not None and hold and record is None and line.isascii() \
                and held.owner == threading.get_ident():
            with held.lock:
                if held.owner is not None and held.handler in (None, self):
                    held.handler = self
                    if held.size + len(line) > HELD_MAX:
                        held.release()
                    if len(line) <= HELD_MAX:
                        held.lines.append(line)
                        held.size += len(line)
                        return
        self._write(line, record)

    def _write(self, line: str, record: logging.LogRecord | None = None) -> None:
        with self.lock:  # type: ignore[union-attr]
            try:
                stream = sys.stderr if self.follow_stderr else self.stream
                stream.write(line)
                stream.flush()
            except Exception:
                if record is not None:
                    self.handleError(record)



#: The most one write of held lines carries: up to ``PIPE_BUF`` a write to a pipe that other
#: worker processes write to as well (a journal, a supervisor) is never interleaved with
#: theirs, so every line stays whole. JSON lines are ASCII: characters are bytes.
HELD_MAX = select.PIPE_BUF


class _Held:
    __slots__ = ("handler", "lines", "lock", "owner", "size")

    def __init__(self) -> None:
        self.handler: LineHandler | None = None
        self.lines: list[str] = []
        self.size = 0
        #: The thread whose lines are held; ``None`` once released for good.
        self.owner: int | None = threading.get_ident()
        self.lock = threading.Lock()

    def release(self) -> None:
        if self.lines and self.handler is not None:
            self.handler._write("".join(self.lines))
        self.lines.clear()
        self.size = 0


_HELD: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("zengine_held_lines",
                                                                    default=None)


class held_lines:
    """The lines zengine's events write in this block (this thread, this task) go out
    together when it ends: one ``write`` and ``flush`` per request instead of one per line
    (each is a system call, and under load the GIL changes hands at every one). Nothing is
    held past the block: a line is only late by the rest of its request; none is held for
    a later request, so none waits at exit. Stdlib records (hypercorn's, a traceback's
    handler) and non-ASCII lines are written at once, as before.

    A block inside another one of the same thread adds its lines to the outer one: granian's
    access line (:func:`zengine.server.granian_engine.access_logged`) goes out with the lines
    of a request answered on the event loop, in one write."""

    __slots__ = ("_held", "_token")

    def __enter__(self) -> None:
        outer = _HELD.get()
        if outer is not None and outer.owner == threading.get_ident():
            self._held: _Held | None = None  # the outer block writes them
            return
        self._held = _Held()
        self._token = _HELD.set(self._held)

    def __exit__(self, *exc: object) -> None:
        if self._held is not None:
            _HELD.reset(self._token)
            release_held(self._held)


def release_held(held: _Held | contextvars.Context | None) -> None:
    """Write the lines held (``held``, or the one a context's block holds) now, and every
    later one at once: the block ended, or its request was answered without waiting for it
    (abandoned at the deadline: its thread may finish late, or never)."""
    if isinstance(held, contextvars.Context):
        held = held.get(_HELD)
    if held is not None:
        with held.lock:
            held.owner = None
            held.release()


def _line(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The one processor for zengine's own events: :func:`zengine.logline.render_json`, else
    the full chain."""
    if isinstance(event_dict, dict) and _Output.render is not None:
        line = _Output.render(getattr(logger, "name", ""), method_name, event_dict)
        if line is not None:
            return line
    result: Any = event_dict
    for processor in _Output.chain:
        result = processor(logger, method_name, result)
    return result

class _Output:
    """What :func:`configure_logging` set up last: the line handler and the processors that
    turn an event into its line. Looked up on every line, so that a logger structlog cached
    under an earlier configuration writes where and how the current one says."""

    handler: LineHandler | None = None
    processors: tuple[Any, ...] = ()
    #: The full chain for zengine's events (:func:`_line` takes it when it must).
    chain: tuple[Any, ...] = ()
    #: The JSON encoding the renderer does (``None``: the console format).
    encode: Any = None
    #: :func:`zengine.logline.render_json` (a module of its own, which imports this one).
    render: Any = None


def _finish(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The end of zengine's own events' chain: the same processors the stdlib formatter runs
    for foreign lines (redaction, tracebacks, sanitising, the renderer), without a stdlib
    ``LogRecord`` and its formatter in between, which cost about half of every line."""
    result: Any = event_dict
    for processor in _Output.processors:
        result = processor(logger, name, result)
    return result


class DirectLogger:
    """structlog's logger for zengine's events: the finished line goes to the line handler."""

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, line: str) -> None:
        handler = _Output.handler
        if handler is not None:
            handler.write_line(line + handler.terminator)

    def now(self, line: str) -> None:
        """A warning or worse is never held: it must not wait for (or die with) its request."""
        handler = _Output.handler
        if handler is not None:
            handler.write_line(line + handler.terminator, hold=False)

    debug = info = log = msg
    warning = warn = error = critical = exception = fatal = now


_PROCESSORS: list[Any] = []  # structlog's, one list for good (see configure_logging)


def _direct_logger(*args: Any) -> DirectLogger:
    return DirectLogger(str(args[0]) if args else "")


def configure_logging(settings: LoggingSettings, stream: Any = None) -> None:
    """Route structlog and stdlib logging (hypercorn included) through one redacting pipeline."""
    renderer: Any
    if settings.format == "console":
        # Plain tracebacks: the rich default prints every frame's locals, passwords included.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)
    else:
        renderer = structlog.processors.JSONRenderer()
    level = getattr(logging, settings.level.upper())
    finishing = (
        redact,
        # Tracebacks are formatted first so that the redaction pass sees their text too.
        structlog.processors.format_exc_info,
        redact_exception,
        sanitise,
        renderer,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finishing],
    )
    handler = LineHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("hypercorn.error", "hypercorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The HTTP client libraries log every request's URL (INFO) and the peer's response headers
    # (DEBUG, Set-Cookie included): values a backend puts in a URL path or answers in a header
    # are not zengine's to log. Their warnings and errors still come through.
    for name in ("httpx2", "httpcore2", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    from zengine.logline import render_json

    _Output.handler, _Output.processors, _Output.render = handler, finishing, render_json
    _Output.chain = (*_shared_processors()[:-1], structlog.processors.StackInfoRenderer(),
                     _finish)
    # What structlog's JSONRenderer calls (json.dumps with its fallback), built once.
    _Output.encode = json.JSONEncoder(default=renderer._dumps_kw["default"]).encode \
        if isinstance(renderer, structlog.processors.JSONRenderer) else None
    # Third-party lines (hypercorn, httpx ...) come through stdlib logging and the formatter
    # above; zengine's and the plugins' structlog events take the same processors directly.
    # One list, changed in place: a logger cached on first use keeps the list it was made with,
    # and capture_logs edits the configured one (a second call must not strand cached loggers).
    _PROCESSORS[:] = [_line]
    structlog.configure(
        processors=_PROCESSORS,
        logger_factory=_direct_logger,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
