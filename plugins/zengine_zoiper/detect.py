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


def detect(request: ProvisionRequest, runtime: Runtime) -> ClientInfo:
    raw = requested_version(request.version_raw)
    family = requested_family(request, runtime)
    if family is None and request.path in runtime.settings.clients.desktop_paths:
        family = desktop.FAMILY
    if family == desktop.FAMILY:
        # Zoiper5 has one format and sends no version: any version parameter is ignored.
        return ClientInfo(desktop.FAMILY, desktop.VERSION, loggable_version(raw))
    if family == legacy.FAMILY:
        return ClientInfo(legacy.FAMILY, legacy.VERSION, loggable_version(raw))
    newest = newest_version(runtime.transforms, mobile.FAMILY, mobile.NEWEST)
    if raw is None:
        if family is None and runtime.settings.clients.no_version == "legacy":
            return ClientInfo(legacy.FAMILY, legacy.VERSION, None)
        return ClientInfo(mobile.FAMILY, newest, None)
    version = parse_version(raw)
    if family is None and version == legacy.VERSION:
        return ClientInfo(legacy.FAMILY, legacy.VERSION, loggable_version(raw))
    return ClientInfo(mobile.FAMILY, mobile_version(version, newest), loggable_version(raw))
