"""Primitive value checks shared by the catalogue and the media tables."""

from __future__ import annotations

import re
from typing import Any

from zengine.errors import ConfigError

_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return _XML_INVALID.sub("\ufffd", text)


_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]*", re.ASCII)


def url_safe(text: str) -> bool:
    """Only RFC 3986 unreserved characters: safe to put in a URL without encoding."""
    return _URL_SAFE.fullmatch(text) is not None


def xml_invalid_char(text: str) -> str | None:
    """Return the first character XML 1.0 cannot carry, or ``None``."""
    match = _XML_INVALID.search(text)
    return match.group(0) if match else None


def invalid(where: str, path: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{where}: field {path!r} has invalid value {value!r}; allowed: {allowed}")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def as_uint(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
