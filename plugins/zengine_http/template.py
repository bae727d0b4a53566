"""Request templates: ``{name}`` is a value of the login (``username``, ``password``, an
identity attribute); ``{{`` and ``}}`` are literal braces.

A value is never pasted into text that is parsed again: in a URL it is percent-encoded (``/``,
``?``, ``&`` and ``#`` included, and a bare ``.``/``..`` segment too), and in a JSON body the
finished structure goes to the JSON encoder, so a value can only ever be one string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


class TemplateError(ValueError):
    pass


class MissingValue(KeyError):
    """A template names a value this login does not have (an identity attribute)."""


def _parts(template: str) -> list[tuple[str, bool]]:
    parts: list[tuple[str, bool]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            parts.append((template[pos:match.start()], False))
        token = match.group(0)
        if match.group(1) is not None:
            parts.append((match.group(1), True))
        elif token in ("{{", "}}"):
            parts.append((token[0], False))
        else:
            raise TemplateError(f"unmatched {token!r} at position {match.start()}; write "
                                "{{ or }} for a literal brace")
        pos = match.end()
    if pos < len(template):
        parts.append((template[pos:], False))
    return parts


def fields_in(template: str) -> set[str]:
    return {text for text, is_field in _parts(template) if is_field}


def _value(values: Mapping[str, str | None], name: str) -> str:
    value = values.get(name)
    if value is None:
        raise MissingValue(name)
    return value


def _url_quote(value: str) -> str:
    # quote() leaves dots alone; a whole "." or ".." would be a dot-segment that URL
    # normalisation resolves, letting "/users/{username}/lines" reach "/lines".
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def expand_url(template: str, values: Mapping[str, str | None]) -> str:
    return "".join(_url_quote(_value(values, text)) if is_field else text
                   for text, is_field in _parts(template))


def expand_text(template: str, values: Mapping[str, str | None]) -> str:
    """For query and form values and JSON strings: the client library encodes the result."""
    return "".join(_value(values, text) if is_field else text
                   for text, is_field in _parts(template))


def expand_json(body: Any, values: Mapping[str, str | None]) -> Any:
    if isinstance(body, str):
        return expand_text(body, values)
    if isinstance(body, dict):
        return {key: expand_json(item, values) for key, item in body.items()}
    if isinstance(body, list):
        return [expand_json(item, values) for item in body]
    return body
