"""Databases for the SQL backend tests: SQLite files, and a fresh PostgreSQL / MariaDB database
per test module (``CREATE DATABASE zengine_test_<random>``, dropped afterwards).

Server URLs come from ``ZENGINE_TEST_POSTGRES_URL`` and ``ZENGINE_TEST_MARIADB_URL``; an
unreachable server skips locally and fails the run under ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import URL, make_url

import zengine_sql
from tests.conftest import service_missing
from zengine.runtime import Runtime, build_runtime
from zengine.settings import settings_from_mapping
from zengine_sql import migrate
from zengine_sql.crypto import generate_key
from zengine_sql.schema import ACCOUNTS, TENANTS, USERS

SERVER_URLS = {
    "postgres": os.environ.get("ZENGINE_TEST_POSTGRES_URL",
                               "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("ZENGINE_TEST_MARIADB_URL",
                              "mysql+pymysql://root@127.0.0.1:3306/test"),
}
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]
#: Test keys, fresh per run; never a real deployment's.
KEY_1 = generate_key()
KEY_2 = generate_key()
PASSWORD = "correct horse battery"


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _server_engine(kind: str) -> sa.Engine:
    url = make_url(SERVER_URLS[kind])
    args: dict[str, Any] = {"connect_timeout": 3}
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args=args,
                            poolclass=sa.pool.NullPool)


def _server_version(kind: str, engine: sa.Engine) -> str:
    """Connect once; an unreachable server is a missing service."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT version()")).scalar())
    except sa.exc.OperationalError as exc:
        service_missing(f"{kind} at {make_url(SERVER_URLS[kind]).render_as_string()} "
                        f"unreachable: {type(exc.orig).__name__}")
        raise


@pytest.fixture(scope="module")
def server_db(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, URL]]:
    """``(kind, url)`` of an empty database that lives as long as the test module."""
    kind: str = request.param
    if kind == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "zengine.db"
        yield kind, make_url(f"sqlite:///{path}")
        return
    engine = _server_engine(kind)
    _server_version(kind, engine)
    name = f"zengine_test_{secrets.token_hex(4)}"
    quoted = engine.dialect.identifier_preparer.quote(name)
    with engine.connect() as conn:
        extra = " CHARACTER SET utf8mb4" if kind == "mariadb" else ""
        conn.execute(sa.text(f"CREATE DATABASE {quoted}{extra}"))
    try:
        yield kind, make_url(SERVER_URLS[kind]).set(database=name)
    finally:
        with engine.connect() as conn:
            force = " WITH (FORCE)" if kind == "postgres" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
        engine.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that asks for a database runs on all three, with their markers.
    # A module may narrow the list with SQL_BACKENDS = ("postgres", ...).
    if "server_db" in metafunc.fixturenames:
        wanted = getattr(metafunc.module, "SQL_BACKENDS", None)
        params = [p for p in BACKENDS if wanted is None or p.id in wanted]
        metafunc.parametrize("server_db", params, indirect=True, scope="module")


@pytest.fixture(scope="module")
def db_url(server_db: tuple[str, URL]) -> URL:
    return server_db[1]


@pytest.fixture(scope="module")
def db_kind(server_db: tuple[str, URL]) -> str:
    return server_db[0]


@pytest.fixture(scope="module")
def migrated(db_url: URL) -> Iterator[URL]:
    """The database with zengine's own schema at head."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine)
    engine.dispose()
    yield db_url


@pytest.fixture
def own_db(migrated: URL) -> Iterator[URL]:
    """Own schema, emptied after each test."""
    yield migrated
    engine = sa.create_engine(migrated, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for table in (ACCOUNTS, USERS, TENANTS):
            conn.execute(sa.delete(table))
    engine.dispose()


def sql_config(url: URL, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"url": url_text(url), "encryption_keys": {"k1": KEY_1},
                              "connect_timeout": 2, "statement_timeout": 5,
                              "pool_timeout": 2}
    config.update(extra)
    return config


def make_runtime(config: dict[str, Any], **top: Any) -> Runtime:
    settings = settings_from_mapping({"plugins": {"sql": config}, **top}, environ={})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("sql", zengine_sql)])
    runtime.start()
    return runtime


@pytest.fixture
def runtime_for() -> Iterator[Callable[..., Runtime]]:
    """Started runtimes with only the SQL plugin, stopped after the test."""
    started: list[Runtime] = []

    def factory(config: dict[str, Any], **top: Any) -> Runtime:
        runtime = make_runtime(config, **top)
        started.append(runtime)
        return runtime

    yield factory
    for runtime in started:
        runtime.stop()


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One argon2id hash of :data:`PASSWORD`, made once: hashing costs ~0.3 s here."""
    return PasswordHasher().hash(PASSWORD)


def sqlite_files(url: URL) -> list[Path]:
    base = Path(str(url.database))
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-journal")) if p.exists()]
