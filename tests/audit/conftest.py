"""Runtimes with the audit store on; database fixtures (SQLite, PostgreSQL, MariaDB) from
tests/sql."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import zengine_audit
from tests.sql.conftest import (  # noqa: F401  (fixtures and the database parametrisation)
    db_kind,
    db_url,
    pytest_generate_tests,
    server_db,
)
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping


@pytest.fixture
def runtime_for(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Started runtimes with the audit plugin (and any ``extra`` plugins), stopped after."""
    started: list[Runtime] = []

    def make(audit: dict[str, Any] | None = None,
             extra: tuple[tuple[str, object], ...] = (), **top: Any) -> Runtime:
        plugins = {"audit": {"store": "sqlite", "sqlite_path": str(tmp_path / "audit.db"),
                             "flush_interval": 0.05, **(audit or {})},
                   **top.pop("plugins", {})}
        settings = settings_from_mapping({"plugins": plugins, **top}, environ={},
                                         base_dir=tmp_path)
        runtime = build_runtime(settings, load_entrypoints=False,
                                plugins=[("audit", zengine_audit), *extra])
        runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()
