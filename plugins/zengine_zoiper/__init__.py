"""Zoiper document families: client detection, builders and per-version transforms.

Registered under the entry point ``zoiper``. The hook implementations live here; each family
is a plain module with a ``build`` function and its transform steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from zengine import hookimpl
from zengine.models import (
    ClientInfo,
    Document,
    Identity,
    ProvisionRequest,
    ResolvedAccount,
    Transform,
)
from zengine.runtime import Runtime
from zengine_zoiper import detect, mobile

Builder = Callable[[list[ResolvedAccount], ClientInfo, Runtime], Document]

BUILDERS: dict[str, Builder] = {
    mobile.FAMILY: mobile.build,
}


@hookimpl(trylast=True)
def zengine_detect_client(request: ProvisionRequest, runtime: Runtime) -> ClientInfo | None:
    return detect.detect(request, runtime)


@hookimpl
def zengine_build_document(accounts: list[ResolvedAccount], client: ClientInfo,
                           identity: Identity, runtime: Runtime) -> Document | None:
    builder = BUILDERS.get(client.family)
    return builder(accounts, client, runtime) if builder is not None else None


@hookimpl
def zengine_transforms(runtime: Runtime) -> Iterable[Transform]:
    return []
