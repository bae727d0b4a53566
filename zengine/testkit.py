"""The plugin test kit: a pytest plugin (``pytest11`` entry point ``zengine``) for plugin authors.

Installed with zengine, so a plugin's own test suite gets these fixtures without a conftest:

* ``zengine_app_factory(plugins, config)``: a Starlette app with *only* the named plugins
  (entry-point names or ``(name, module)`` pairs) and a config mapping;
* ``zengine_client_factory(plugins, config)``: the same app behind a started
  ``starlette.testclient.TestClient`` (startup and shutdown hooks run);
* ``zengine_runtime_factory(plugins, config)``: a started :class:`~zengine.runtime.Runtime`,
  for calling hooks directly;
* ``zengine_check_document(body, family, version)``: fails with every structural problem of a
  served document;
* ``zengine_golden``: a :class:`~zengine.testing.Golden` for the test file's ``golden/``
  directory, rewritten by ``--zengine-update-golden``.

Every fixture name starts with ``zengine_`` so it cannot clash with a project's own fixtures,
and nothing heavy is imported until a fixture is used: the plugin costs a test suite that does
not use it nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from zengine.models import Version
    from zengine.runtime import Runtime
    from zengine.settings import Settings
    from zengine.testing import Golden

PluginSpec = str | tuple[str, object]


class AppFactory(Protocol):
    def __call__(self, plugins: Iterable[PluginSpec], config: Mapping[str, Any] | None = None,
                 *, base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> Starlette: ...


class ClientFactory(Protocol):
    def __call__(self, plugins: Iterable[PluginSpec], config: Mapping[str, Any] | None = None,
                 *, base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> TestClient: ...


class RuntimeFactory(Protocol):
    def __call__(self, plugins: Iterable[PluginSpec], config: Mapping[str, Any] | None = None,
                 *, base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> Runtime: ...


class DocumentCheck(Protocol):
    def __call__(self, document: bytes, family: str, version: Version | str) -> None: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zengine", "zengine plugin test kit")
    group.addoption("--zengine-update-golden", action="store_true", default=False,
                    help="rewrite the golden files compared by the zengine_golden fixture "
                         "(also ZENGINE_UPDATE_GOLDEN=1); review the diff afterwards")


def _settings(config: Mapping[str, Any] | None, base_dir: Path | None,
              environ: Mapping[str, str] | None) -> Settings:
    from zengine.settings import settings_from_mapping

    # The developer's own ZENGINE_* variables must not leak into a test's configuration.
    return settings_from_mapping(config or {}, base_dir=base_dir,
                                 environ={} if environ is None else environ)


@pytest.fixture
def zengine_runtime_factory() -> Iterator[RuntimeFactory]:
    """Build and start runtimes with only the named plugins; each is stopped after the test."""
    from zengine.runtime import build_runtime
    from zengine.testing import resolve_plugins

    started: list[Runtime] = []

    def make(plugins: Iterable[PluginSpec], config: Mapping[str, Any] | None = None, *,
             base_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Runtime:
        runtime = build_runtime(_settings(config, base_dir, environ), load_entrypoints=False,
                                plugins=resolve_plugins(plugins))
        runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in reversed(started):
        runtime.stop()


@pytest.fixture
def zengine_app_factory() -> AppFactory:
    """Build apps with only the named plugins (the lifespan starts them, e.g. a TestClient)."""
    from zengine.app import create_app
    from zengine.testing import resolve_plugins

    def make(plugins: Iterable[PluginSpec], config: Mapping[str, Any] | None = None, *,
             base_dir: Path | None = None,
             environ: Mapping[str, str] | None = None) -> Starlette:
        return create_app(_settings(config, base_dir, environ), load_entrypoints=False,
                          plugins=resolve_plugins(plugins))

    return make


@pytest.fixture
def zengine_client_factory(zengine_app_factory: AppFactory) -> Iterator[ClientFactory]:
    """HTTP clients of started apps (startup ran; shutdown runs after the test)."""
    from starlette.testclient import TestClient

    with contextlib.ExitStack() as stack:
        def make(plugins: Iterable[PluginSpec], config: Mapping[str, Any] | None = None, *,
                 base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> TestClient:
            app = zengine_app_factory(plugins, config, base_dir=base_dir, environ=environ)
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def zengine_check_document() -> DocumentCheck:
    """``check(body, "mobile", "1.14")`` fails listing every problem against the catalogue."""
    from zengine import testing

    with contextlib.suppress(ImportError):
        # The legacy and desktop checkers live with the plugin that builds those families.
        from zengine_zoiper import checks

        for family, checker in checks.CHECKERS.items():
            testing.STRUCTURE_CHECKERS.setdefault(family, checker)
    return testing.assert_document


@pytest.fixture
def zengine_golden(request: pytest.FixtureRequest) -> Golden:
    """Golden files in ``golden/`` next to the test file."""
    from zengine.testing import Golden

    update = bool(request.config.getoption("--zengine-update-golden")) or \
        os.environ.get("ZENGINE_UPDATE_GOLDEN") == "1"
    return Golden(Path(request.path).parent / "golden", update=update)
