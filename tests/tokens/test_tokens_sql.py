"""The token store on SQLite, PostgreSQL and MariaDB: migrations up and down, the store on
the SQL backend's own engine, and 20 concurrent fetches of one single-use token."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

import zengine_sql
from tests.sql.conftest import url_text
from zengine.runtime import Runtime
from zengine_tokens import migrate
from zengine_tokens.api import token_service
from zengine_tokens.schema import METADATA, VERSION_TABLE
from zengine_tokens.store import Consumed


@pytest.fixture
def engine(db_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    migrate.downgrade(engine, "base")
    engine.dispose()


def _tables(engine: sa.Engine) -> set[str]:
    return {n for n in sa.inspect(engine).get_table_names() if n.startswith("zengine_tokens")}


def test_upgrade_matches_the_table_and_downgrade_removes_it(engine: sa.Engine) -> None:
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head() == "t0002"
    assert _tables(engine) == {"zengine_tokens", VERSION_TABLE}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "version_table": VERSION_TABLE})
        diff = [d for d in compare_metadata(context, METADATA)
                if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []
    indexed = {tuple(i["column_names"]) for i in sa.inspect(engine).get_indexes("zengine_tokens")}
    assert ("tenant", "username") in indexed
    migrate.downgrade(engine, "base")
    assert _tables(engine) <= {VERSION_TABLE}
    assert migrate.current(engine) is None
    migrate.ensure_current(engine)
    migrate.ensure_current(engine)  # a second worker starting finds it done
    assert migrate.current(engine) == "t0002"


@pytest.fixture
def sql_runtime(db_url: URL, runtime_for: Callable[..., Runtime]) -> Iterator[Runtime]:
    sql = {"url": url_text(db_url), "create_schema_on_start": True, "connect_timeout": 2,
           "statement_timeout": 10, "pool_size": 10, "max_overflow": 15, "pool_timeout": 10}
    runtime = runtime_for({"replay_window": 0}, extra=(("sql", zengine_sql),),
                          plugins={"sql": sql}, auth={"chain": ["static", "sql"]})
    yield runtime
    with sa.create_engine(db_url, poolclass=sa.pool.NullPool).begin() as conn:
        conn.execute(sa.text("DELETE FROM zengine_tokens"))


def test_store_lives_in_the_sql_backend_database(sql_runtime: Runtime, tmp_path: Path,
                                                db_url: URL) -> None:
    service = token_service(sql_runtime)
    assert service.backend == "sql"
    issued = service.issue("alice")
    assert not (tmp_path / "tokens.db").exists()
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, token_hash FROM zengine_tokens")).all()
    engine.dispose()
    assert [r[0] for r in rows] == [issued.id] and issued.token not in repr(rows)
    assert service.redeem(issued.token, "a").outcome == "used"


def _race(service_redeem: Callable[[], Consumed], n: int = 20) -> list[Consumed]:
    barrier = threading.Barrier(n)
    results: list[Consumed] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            result = service_redeem()
            with lock:
                results.append(result)
        except BaseException as exc:  # reported below; a thread must not die silently
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == n
    return results


@pytest.mark.parametrize("window", [0, 60])
def test_twenty_concurrent_fetches_of_a_single_use_token(sql_runtime: Runtime,
                                                         window: int) -> None:
    service = token_service(sql_runtime)
    if window:
        service.config = service.config.model_copy(
            update={"replay_window": timedelta(seconds=window)})
    issued = service.issue("alice", uses=1)
    results = _race(lambda: service.redeem(issued.token, "198.51.100.7"))
    counts = Counter(r.outcome for r in results)
    if window:
        # One fetch consumed the token; every other one was a retry from the same address.
        assert counts == {"used": 1, "replay": 19}
    else:
        assert counts == {"used": 1, "refused": 19}
        assert {r.reason for r in results if r.outcome == "refused"} == {"used"}
    [info] = service.list("alice")
    assert info.uses == 1 and info.state == "used"
