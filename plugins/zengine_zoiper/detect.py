"""Built-in client detection: which document family and version a request gets.

Runs last (``trylast``), so a plugin for a branded client can decide first. The rules, in order:

1. a ``format`` parameter (names in ``[request] format_params``) forces the family;
2. a path in ``[clients] desktop_paths`` selects the Zoiper5 desktop family;
3. otherwise the version parameter decides between legacy 1.0 and the mobile 1.x family.

Version negotiation (documented in ``docs/clients.md``): every ``1.N`` up to the newest step is a
known mobile version; a client gets the highest known version not newer than its own, a client
newer than the newest gets the newest (no source promises that newer clients accept older
documents; Zoiper's example server does the same, serving its one 1.x document to every version
above 1.0), ``1``/``1.0`` is legacy and anything below 1.0 or unparsable is a
:class:`BadVersion`. Versions are read leniently, like the example server: ``1.2.3.4`` is 1.2,
``1.14-beta`` is 1.14.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from zengine.errors import BadRequest, BadVersion
from zengine.models import ClientInfo, ProvisionRequest, Version
from zengine.request import is_placeholder, pick
from zengine.runtime import Runtime
from zengine.transforms import newest_version
from zengine_zoiper import desktop, legacy, mobile, mobile_transforms

FAMILIES = (mobile.FAMILY, legacy.FAMILY, desktop.FAMILY)
#: Plain dotted numbers; any other version text is logged by its length only.
_VERSION_LIKE = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,4}){0,3}")


def requested_version(raw: str | None) -> str | None:
    """The version text the client really sent; ``None`` for absent, empty or a placeholder
    (Zoiper5 has no version placeholder, iOS also knows braces: such a client sent no version,
    it did not send a bad one)."""
    if raw is None or not raw.strip() or is_placeholder(raw):
        return None
    return raw


def loggable_version(raw: str | None) -> str | None:
    """``raw`` if it looks like a version, else a marker: the request log records what was
    asked for, never free text a client put there."""
    if raw is None or _VERSION_LIKE.fullmatch(raw):
        return raw
    return f"(unparsable, {len(raw)} characters)"


def parse_version(raw: str) -> Version:
    try:
        version = Version.parse(raw)
    except ValueError:
        # The raw text may be anything the client sent: keep it out of the public message.
        # Anything the client sent (a login may land there): its length only, in the log too.
        raise BadVersion(f"unparsable version ({len(raw)} characters)") from None
    if version < legacy.VERSION:
        raise BadVersion(f"version {version} is older than 1.0")
    return version


def mobile_version(version: Version, newest: Version) -> Version:
    """The mobile version served to a client of ``version`` (patch level dropped)."""
    if version > newest:
        return newest
    return Version(version.major, max(version.minor, mobile_transforms.OLDEST.minor))


def requested_family(request: ProvisionRequest, runtime: Runtime) -> str | None:
    raw = pick(request.params, runtime.settings.request.format_params)
    if raw is None:
        return None
    family = raw.strip().lower()
    if family not in FAMILIES:
        # The value is whatever the client sent (a login may land there): its length only.
        raise BadRequest(f"unknown format ({len(raw)} characters)",
                         public_message="Bad request: unknown document format; "
                                        f"use one of {', '.join(FAMILIES)}.")
    return family


#: Answers remembered per runtime (:func:`detect`); emptied when full. A key is at most a
#: path and a few parameter values of ``[server] max_param_length``: well under 1 KB each.
MEMO_MAX = 1024


@dataclass
class _Memo:
    """What :func:`detect` answered, for the runtime's settings and transforms of the time."""

    settings: Any
    transforms: list[Any]
    count: int
    newest: Version
    answers: dict[tuple[Any, ...], ClientInfo] = field(default_factory=dict)


def _memo(runtime: Runtime) -> _Memo:
    memo = runtime.state.get("zoiper")
    if not isinstance(memo, _Memo) or memo.settings is not runtime.settings \
            or memo.transforms is not runtime.transforms \
            or memo.count != len(runtime.transforms):
        # First use, or the runtime's settings or transforms were replaced since (tests do).
        memo = runtime.state["zoiper"] = _Memo(
            runtime.settings, runtime.transforms, len(runtime.transforms),
            newest_version(runtime.transforms, mobile.FAMILY, mobile.NEWEST))
    return memo


def detect(request: ProvisionRequest, runtime: Runtime) -> ClientInfo:
    """The family and version for ``request``. A pure function of the request's path,
    version text and format parameters and of the runtime's settings and transforms (and
    :class:`ClientInfo` is frozen), so a returning phone's answer is remembered under exactly
    those: the same phone asks the same every time. A refusal (a bad version, several format
    parameters) is not remembered: it raises again."""
    memo = _memo(runtime)
    params = request.params
    key = (request.path, request.version_raw,
           *[params.get(name) for name in runtime.settings.request.format_params])
    client = memo.answers.get(key)
    if client is None:
        client = _detect(request, runtime, memo.newest)
        answers = memo.answers
        if len(answers) >= MEMO_MAX:
            answers.clear()  # a flood of distinct versions: start again, never grow
        answers[key] = client
    return client


def _detect(request: ProvisionRequest, runtime: Runtime, newest: Version) -> ClientInfo:
    raw = requested_version(request.version_raw)
    family = requested_family(request, runtime)
    if family is None and request.path in runtime.settings.clients.desktop_paths:
        family = desktop.FAMILY
    if family == desktop.FAMILY:
        # Zoiper5 has one format and sends no version: any version parameter is ignored.
        return ClientInfo(desktop.FAMILY, desktop.VERSION, loggable_version(raw))
    if family == legacy.FAMILY:
        return ClientInfo(legacy.FAMILY, legacy.VERSION, loggable_version(raw))
    if raw is None:
        if family is None and runtime.settings.clients.no_version == "legacy":
            return ClientInfo(legacy.FAMILY, legacy.VERSION, None)
        return ClientInfo(mobile.FAMILY, newest, None)
    version = parse_version(raw)
    if family is None and version == legacy.VERSION:
        return ClientInfo(legacy.FAMILY, legacy.VERSION, loggable_version(raw))
    return ClientInfo(mobile.FAMILY, mobile_version(version, newest), loggable_version(raw))
