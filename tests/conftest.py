"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(what: str) -> None:
    """A test needing a real service skips locally, with the reason, and fails under CI=true."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(what)


from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

from starlette.applications import Starlette  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from zengine.app import create_app  # noqa: E402
from zengine.runtime import Runtime  # noqa: E402
from zengine.settings import Settings, load_settings  # noqa: E402
from zengine.testing import plugin_list  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "config" / "zengine.example.toml"
BUILTINS = ("zoiper", "static", "urls", "audit")


async def unused_receive() -> Message:
    raise AssertionError("this app was not expected to receive")


async def unused_send(message: Message) -> None:
    raise AssertionError(f"this app was not expected to send: {message!r}")


def run_asgi(app: ASGIApp, scope: Scope, receive: Receive = unused_receive,
             send: Send = unused_send) -> None:
    """One call of ``app``, to its end, on an event loop of its own."""
    async def call() -> None:
        await app(scope, receive, send)

    asyncio.run(call())


def runtime_of(client: TestClient) -> Runtime:
    """The runtime of the zengine app a test client serves (``app.state.runtime``)."""
    app = client.app
    assert isinstance(app, Starlette)
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


@pytest.fixture(scope="session")
def example_settings() -> Settings:
    return load_settings(EXAMPLE_CONFIG, environ={})


@pytest.fixture(scope="session")
def example_client(example_settings: Settings) -> Iterator[TestClient]:
    """The example config served by the built-in plugins (no entry points: a fresh manager)."""
    app = create_app(example_settings, load_entrypoints=False, plugins=plugin_list(*BUILTINS))
    with TestClient(app) as client:
        yield client


def spy_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every write the current line handler makes from now on (each still written): what
    ``held_lines`` batches into one write is one entry."""
    from zengine import log as zlog

    handler = zlog._Output.handler
    assert handler is not None
    writes: list[str] = []
    real = handler._write

    def write(line: str, record: logging.LogRecord | None = None) -> None:
        writes.append(line)
        real(line, record)

    monkeypatch.setattr(handler, "_write", write)
    return writes


#: Modules whose module-level structlog loggers :func:`_uncached_loggers` resets.
_OWN_MODULES = ("zengine", "zengine_", "tests", "zengine_example")


@pytest.fixture(autouse=True)
def _uncached_loggers() -> None:
    """Every test starts with zengine's and the plugins' module loggers uncached, as in a fresh
    process. structlog caches a logger on first use with the configuration of that moment, its
    level included (``cache_logger_on_first_use``): a module logger first used under an earlier
    test's configuration (the CLI's is ``warning``) would drop a later test's info lines, so a
    test's result depended on the tests before it. The proxy keeps the cache as its own
    ``bind`` attribute; removing it makes the next use bind again under the current config."""
    import sys

    from structlog._config import BoundLoggerLazyProxy

    for name, module in list(sys.modules.items()):
        if not name.startswith(_OWN_MODULES):
            continue
        for value in list(getattr(module, "__dict__", {}).values()):
            if type(value) is BoundLoggerLazyProxy:
                value.__dict__.pop("bind", None)
