"""Runtimes with the tokens plugin over a static users file; database fixtures from tests/sql."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import zengine_audit
import zengine_static
import zengine_tokens
import zengine_urls
import zengine_zoiper
from tests.sql.conftest import (  # noqa: F401  (fixtures and the database parametrisation)
    db_kind,
    db_url,
    pytest_generate_tests,
    server_db,
)
from zengine import hookimpl
from zengine.models import AuditEvent
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping

USERS = """
[users.alice]
password_hash = "{hash}"
[[users.alice.accounts]]
ident = "alice-office"
sip_username = "alice"
sip_password = "Tea&Cakes<3"
domain = "sip.example.com"
auth_username = "alice-auth"
[[users.alice.accounts]]
ident = "alice-home"
sip_username = "alice2"
sip_password = "Down-the-rabbit-hole"
domain = "sip.example.com"

[users.bob]
password_hash = "{hash}"
[[users.bob.accounts]]
ident = "bob-1"
sip_username = "bob"
sip_password = "b0b-sip-secret"
domain = "sip.example.com"
"""


class AuditSink:
    """Records audit events, as a third-party audit plugin would."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @hookimpl
    def zengine_audit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[AuditEvent]:
        return [e for e in self.events if e.event == name]


def write_users(directory: Path) -> Path:
    from argon2 import PasswordHasher

    digest = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("wonderland")
    path = directory / "users.toml"
    path.write_text(USERS.replace("{hash}", digest), encoding="utf-8")
    return path


def config_for(directory: Path, tokens: dict[str, Any] | None = None,
               **top: Any) -> dict[str, Any]:
    users = write_users(directory)
    plugins: dict[str, Any] = {"static": {"users_file": str(users)},
                               "tokens": {"sqlite_path": str(directory / "tokens.db"),
                                          **(tokens or {})}}
    plugins.update(top.pop("plugins", {}))
    return {"plugins": plugins, "server": {"public_url": "https://prov.example.com"}, **top}


def plugins(sink: AuditSink | None = None, *extra: tuple[str, object]) -> list[tuple[str, object]]:
    chosen: list[tuple[str, object]] = [
        ("zoiper", zengine_zoiper), ("static", zengine_static), ("urls", zengine_urls),
        ("audit", zengine_audit), ("tokens", zengine_tokens), *extra]
    if sink is not None:
        chosen.append(("sink", sink))
    return chosen


@pytest.fixture
def sink() -> AuditSink:
    return AuditSink()


@pytest.fixture
def runtime_for(tmp_path: Path, sink: AuditSink) -> Iterator[Callable[..., Runtime]]:
    started: list[Runtime] = []

    def make(tokens: dict[str, Any] | None = None, extra: tuple[tuple[str, object], ...] = (),
             **top: Any) -> Runtime:
        settings = settings_from_mapping(config_for(tmp_path, tokens, **top), environ={},
                                         base_dir=tmp_path)
        runtime = build_runtime(settings, load_entrypoints=False, plugins=plugins(sink, *extra))
        runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(directory: Path, tokens: dict[str, Any] | None = None,
                 server: dict[str, Any] | None = None,
                 guard: dict[str, Any] | None = None) -> Path:
    """A config file for the real server: static users, the token store in ``directory``."""
    users = write_users(directory)
    tables: dict[str, dict[str, Any]] = {
        "server": {"public_url": "https://prov.example.com", **(server or {})},
        "logging": {"format": "json", "level": "info"},
        "auth": {"chain": ["static"], "failure_floor_ms": 50},
        "plugins.static": {"users_file": str(users)},
        "plugins.tokens": {"sqlite_path": str(directory / "tokens.db"),
                           "provider_id": "0123456789abcdef0123456789abcdef", **(tokens or {})},
    }
    if guard is not None:
        tables["plugins.guard"] = guard
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    path = directory / "zengine.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def runtime_from(config: Path, *extra: tuple[str, object]) -> Runtime:
    """A started runtime on a config file, sharing its token store with a server using it."""
    from zengine.settings import load_settings

    runtime = build_runtime(load_settings(config, environ={}), load_entrypoints=False,
                            plugins=plugins(None, *extra))
    runtime.start()
    return runtime
