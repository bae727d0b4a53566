"""Built-in client detection: the family from the path or a ``format`` parameter, the version
from the version parameter. Runs last, so a plugin for a branded client can decide first."""

from __future__ import annotations

from zengine.errors import BadVersion
from zengine.models import ClientInfo, ProvisionRequest, Version
from zengine.runtime import Runtime
from zengine.transforms import newest_version
from zengine_zoiper import mobile

LEGACY = Version(1, 0)


def detect(request: ProvisionRequest, runtime: Runtime) -> ClientInfo:
    raw = request.version_raw
    newest = newest_version(runtime.transforms, mobile.FAMILY, mobile.NEWEST)
    if raw is None:
        if runtime.settings.clients.no_version == "legacy":
            return ClientInfo("legacy", LEGACY, None)
        return ClientInfo(mobile.FAMILY, newest, None)
    try:
        version = Version.parse(raw)
    except ValueError:
        raise BadVersion("unparsable version") from None
    if version < LEGACY:
        raise BadVersion(f"version {version} is older than 1.0")
    if version == LEGACY:
        return ClientInfo("legacy", LEGACY, raw)
    # Zoiper promises newer clients accept older documents: serve the newest we know.
    return ClientInfo(mobile.FAMILY, min(version, newest), raw)

