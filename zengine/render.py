"""``zengine render``: the exact document a user would get, without their password."""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from types import MappingProxyType

from zengine.errors import LoginFailed
from zengine.models import ClientInfo, ProvisionRequest
from zengine.pipeline import Outcome, detect_client, render_for
from zengine.runtime import Runtime

#: True while :func:`render_document` builds a preview (``zengine render``, the admin API's and
#: the console's user preview): plugins that write on a real fetch (issuing a token) must not
#: write for a preview, and put a placeholder instead.
previewing: ContextVar[bool] = ContextVar("zengine_previewing", default=False)

#: The text a preview shows where a real fetch would get a secret issued for it.
PREVIEW_PLACEHOLDER = "(preview: issued when the client fetches)"


def render_document(runtime: Runtime, username: str, *, version: str | None = None,
                    family: str | None = None) -> bytes:
    settings = runtime.settings
    path = settings.server.paths[0] if settings.server.paths else "/"
    params = {}
    if family == "desktop" and settings.clients.desktop_paths:
        path = settings.clients.desktop_paths[0]
    if family is not None and settings.request.format_params:
        params[settings.request.format_params[0]] = family
    request = ProvisionRequest(path=path, params=MappingProxyType(params),
                               headers=MappingProxyType({}), client_addr="cli",
                               credentials=None, version_raw=version)
    client = detect_client(request, runtime)
    if family is not None and client.family != family:
        client = ClientInfo(family, client.version, version)
    identity = runtime.hooks.find_identity(username, runtime, settings.auth.chain)
    if identity is None:
        raise LoginFailed(f"No backend knows user {username!r}",
                          public_message=f"No backend knows user {username!r}.")
    if runtime.tenant and identity.tenant != runtime.tenant:
        identity = dataclasses.replace(identity, tenant=runtime.tenant)
    marker = previewing.set(True)
    try:
        return render_for(identity, client, runtime, Outcome())
    finally:
        previewing.reset(marker)
