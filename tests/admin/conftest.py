"""A real server with the admin API on: static users, the SQL own schema (SQLite file, or the
module's PostgreSQL/MariaDB database), tokens, the guard; keys made through the key store, as
``zengine apikeys create`` makes them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from tests.serverproc import Server, running_server
from tests.sql.conftest import (  # noqa: F401  (fixtures and the database parametrisation)
    KEY_1,
    db_kind,
    db_url,
    pytest_generate_tests,
    server_db,
    url_text,
)
from tests.tokens.conftest import _toml_value, write_users
from zengine.runtime import Runtime, build_runtime
from zengine.settings import load_settings

PROVIDER = "0123456789abcdef0123456789abcdef"


def write_config(directory: Path, db: URL | None = None, *, admin: dict[str, Any] | None = None,
                 guard: dict[str, Any] | None = None, chain: tuple[str, ...] = ("sql", "static"),
                 server: dict[str, Any] | None = None, failure_floor_ms: int = 200,
                 log_level: str = "info", audit: dict[str, Any] | None = None) -> Path:
    users = write_users(directory)
    db = db if db is not None else URL.create("sqlite", database=str(directory / "own.db"))
    tables: dict[str, dict[str, Any]] = {
        "server": {"public_url": "https://prov.example.com", **(server or {})},
        "logging": {"format": "json", "level": log_level},
        "auth": {"chain": list(chain), "failure_floor_ms": failure_floor_ms},
        # Cheap hashes: users are created by the dozen here; the cost is not what is tested.
        "passwords": {"time_cost": 1, "memory_kib": 1024, "parallelism": 1},
        "plugins.static": {"users_file": str(users)},
        "plugins.sql": {"url": url_text(db), "create_schema_on_start": True,
                        "connect_timeout": 2, "statement_timeout": 5, "pool_timeout": 2},
        "plugins.sql.encryption_keys": {"k1": KEY_1},
        "plugins.tokens": {"sqlite_path": str(directory / "tokens.db"), "provider_id": PROVIDER},
        "plugins.admin": {"enabled": True, "sqlite_path": str(directory / "admin.db"),
                          **(admin or {})},
        "plugins.guard": {"lockout_threshold": 100, **(guard or {})},
        "profiles.office": {"SIP_transport_type": "TLS"},
    }
    if audit is not None:
        tables["plugins.audit"] = audit
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    path = directory / "zengine.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def runtime_from(config: Path, environ: dict[str, str] | None = None) -> Runtime:
    """A started runtime on the config, with every built-in plugin (as the CLI has)."""
    runtime = build_runtime(load_settings(config, environ=environ or {}))
    runtime.start()
    return runtime


def make_keys(config: Path, *specs: tuple[str, str, dict[str, Any]]) -> list[str]:
    """Keys ``(name, scope, options)`` made in one runtime, as ``zengine apikeys create``."""
    from zengine_admin.keys import key_store

    # Without the audit store's writer thread: making keys needs none, and its pooled
    # connection would outlive the runtime into the next database's tests.
    runtime = runtime_from(config, {"ZENGINE_PLUGINS__AUDIT__STORE": "off"})
    try:
        store = key_store(runtime)
        return [store.create(name, scope, **options).key  # type: ignore[arg-type]
                for name, scope, options in specs]
    finally:
        runtime.stop()


def make_key(config: Path, name: str, scope: str, **kwargs: Any) -> str:
    return make_keys(config, (name, scope, kwargs))[0]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    server: Server
    key: str | None = None

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> Reply:
        sent = dict(headers or {})
        chosen = key if key is not None else self.key
        if chosen is not None:
            sent.setdefault("Authorization", f"Bearer {chosen}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.server.base + path,  # noqa: S310 - http://
                                         data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310
                return Reply(answer.status, {k.lower(): v for k, v in answer.headers.items()},
                             answer.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


@dataclass
class AdminServer:
    server: Server
    config: Path
    keys: dict[str, str]

    def client(self, name: str = "admin") -> Client:
        return Client(self.server, self.keys[name])


def start(tmp_path: Path, db: URL | None = None, **kwargs: Any) -> Iterator[AdminServer]:
    # The audit store in the SQL backend's database, so the audit query has rows.
    kwargs.setdefault("audit", {"store": "auto", "flush_interval": 0.05})
    config = write_config(tmp_path, db, **kwargs)
    made = make_keys(config, ("admin", "write", {}), ("reader", "read", {}),
                     ("onboarding", "tokens", {}), ("acme-admin", "write", {"tenant": "acme"}))
    keys = dict(zip(("admin", "reader", "onboarding", "acme"), made, strict=True))
    with running_server(config, tmp_path) as server:
        yield AdminServer(server, config, keys)


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[AdminServer]:
    yield from start(tmp_path)
