"""URL templates: ``{field}`` is a server-side value, URL-encoded on expansion; ``${NAME}`` is a
Zoiper client-side placeholder and passes through untouched; ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

#: Placeholders the Zoiper client itself fills in (OEM docs; upper case only).
ZOIPER_PLACEHOLDERS = frozenset(
    {"USERNAME", "PASSWORD", "CURRENCY", "DESTINATION", "CALL_IDENTIFIER", "RATING"})
#: Server-side fields available to templates.
SERVER_FIELDS = frozenset(
    {"username", "sip_username", "auth_username", "ident", "domain", "tenant", "profile",
     "name"})

_TOKEN = re.compile(r"\$\{(?P<client>[^}]*)\}|\{\{|\}\}|\{(?P<field>[^{}]*)\}|[{}]")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and field names, alternating."""

    parts: tuple[tuple[str, bool], ...]  # (text, is_field)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(text for text, is_field in self.parts if is_field)

    def expand(self, values: Mapping[str, str | None]) -> str:
        return "".join(
            quote(values.get(text) or "", safe="") if is_field else text
            for text, is_field in self.parts
        )


def parse(template: str) -> Template:
    parts: list[tuple[str, bool]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            parts.append((template[pos:match.start()], False))
        token = match.group(0)
        if match.group("client") is not None:
            name = match.group("client")
            if name not in ZOIPER_PLACEHOLDERS:
                raise TemplateError(
                    f"unknown Zoiper placeholder ${{{name}}}; Zoiper knows "
                    f"{', '.join('${' + p + '}' for p in sorted(ZOIPER_PLACEHOLDERS))} "
                    "(upper case only)")
            parts.append((token, False))
        elif token in ("{{", "}}"):
            parts.append((token[0], False))
        elif match.group("field") is not None:
            name = match.group("field").strip()
            if name not in SERVER_FIELDS:
                raise TemplateError(f"unknown server field {{{name}}}; available: "
                                    f"{', '.join('{' + f + '}' for f in sorted(SERVER_FIELDS))}")
            parts.append((name, True))
        else:
            raise TemplateError(f"unmatched {token!r} at position {match.start()}; "
                                "write {{ or }} for a literal brace")
        pos = match.end()
    if pos < len(template):
        parts.append((template[pos:], False))
    return Template(tuple(parts))
