"""Zoiper document families: client detection, builders and per-version transforms.

Registered under the entry point ``zoiper``. The hook implementations live here; each family
is a plain module with a ``build`` function: ``mobile`` (1.x, transform steps in
``mobile_transforms``), ``legacy`` (1.0 flat format) and ``desktop`` (Zoiper5).
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
from zengine_zoiper import desktop, detect, legacy, mobile, mobile_transforms

Builder = Callable[[list[ResolvedAccount], ClientInfo, Runtime], Document]

BUILDERS: dict[str, Builder] = {
    mobile.FAMILY: mobile.build,
    legacy.FAMILY: legacy.build,
    desktop.FAMILY: desktop.build,
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
    return mobile_transforms.steps()


@hookimpl
def zengine_data_generation() -> str:
    # The builders and transforms are pure functions of their inputs and the frozen settings.
    return "1"


@hookimpl
def zengine_inline_safe() -> bool:
    # Client detection reads the request only.
    return True
