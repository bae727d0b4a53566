"""The audit store on SQLite, PostgreSQL and MariaDB: migrations, the typed query with its
filters and stable cursor, retention, hostile values, and the bounded queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
import structlog.testing
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

import zengine_sql
from tests.sql.conftest import url_text
from zengine.errors import BackendUnavailable, ConfigError
from zengine.models import AuditEvent
from zengine.runtime import Runtime
from zengine_audit import store as store_module
from zengine_audit.api import AuditQuery, AuditStoreOff, BadCursor, audit_service
from zengine_audit.migrate import MIGRATIONS
from zengine_audit.schema import EVENTS, METADATA, TABLE_NAME, VERSION_TABLE
from zengine_audit.store import AuditStore, decode_cursor, encode_cursor
from zengine_audit.writer import to_row

T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def engine(db_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    MIGRATIONS.downgrade(engine, "base")
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> AuditStore:
    MIGRATIONS.ensure_current(engine)
    return AuditStore(engine)


def _event(n: int, **fields: object) -> AuditEvent:
    values: dict[str, object] = {"event": "login.accepted", "outcome": "accepted",
                                 "username": f"user{n % 3}", "client_addr": f"10.0.0.{n}"}
    values.update(fields)
    return AuditEvent(**values)  # type: ignore[arg-type]


def _rows(count: int, start: datetime = T0, step: timedelta = timedelta(seconds=1),
          **fields: object) -> list[dict[str, object]]:
    return [to_row((start + i * step).timestamp(), _event(i, **fields)) for i in range(count)]


def test_upgrade_matches_the_table_and_downgrade_removes_it(engine: sa.Engine) -> None:
    assert MIGRATIONS.current(engine) is None
    MIGRATIONS.ensure_current(engine)
    MIGRATIONS.ensure_current(engine)  # a second worker starting finds it done
    assert MIGRATIONS.current(engine) == MIGRATIONS.head() == "a0001"
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "version_table": VERSION_TABLE})
        diff = [d for d in compare_metadata(context, METADATA)
                if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []
    indexed = {tuple(i["column_names"]) for i in sa.inspect(engine).get_indexes(TABLE_NAME)}
    assert ("tenant", "username", "at", "id") in indexed
    MIGRATIONS.downgrade(engine, "base")
    assert TABLE_NAME not in sa.inspect(engine).get_table_names()


def test_microseconds_and_time_zone_survive_every_database(store: AuditStore) -> None:
    store.insert_many(_rows(1))
    (record,) = store.query(AuditQuery()).records
    assert record.at == T0 and record.at.tzinfo is not None


def test_filters_narrow_by_user_time_outcome_event_and_tenant(store: AuditStore) -> None:
    rows = _rows(30)
    for i, row in enumerate(rows):
        if i % 5 == 0:
            row.update(event="login.refused", outcome="rejected", detail="wrong password")
        if i % 7 == 0:
            row.update(event="token.issued", outcome="issued")
        if i >= 25:
            row["tenant"] = "acme"
    store.insert_many(rows)

    def ids(**query: object) -> list[str | None]:
        page = store.query(AuditQuery(limit=500, **query))  # type: ignore[arg-type]
        return [r.client_addr for r in page.records]

    assert len(ids()) == 30
    assert ids(username="user1") == [f"10.0.0.{i}" for i in range(29, -1, -1) if i % 3 == 1]
    assert ids(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=12)) == [
        "10.0.0.11", "10.0.0.10"]
    refused = store.query(AuditQuery(outcomes=("rejected",), limit=500)).records
    assert {r.event for r in refused} == {"login.refused"}
    assert all(r.detail == "wrong password" for r in refused)
    assert len(refused) == len([i for i in range(30) if i % 5 == 0 and i % 7 != 0])
    assert set(ids(events=("token.*",))) == {f"10.0.0.{i}" for i in range(0, 30, 7)}
    assert ids(events=("token%",)) == []  # LIKE wildcards in a prefix are literal
    assert ids(tenant="acme") == [f"10.0.0.{i}" for i in range(29, 24, -1)]
    assert len(ids(tenant="")) == 25
    assert ids(username="User1") == []  # byte-exact, MariaDB too


def test_cursor_pages_are_stable_while_rows_arrive(store: AuditStore) -> None:
    # Ten rows share each instant, so the cursor must order by id within a time.
    rows = _rows(95, step=timedelta(0))
    rows += _rows(5, start=T0 + timedelta(seconds=5))
    store.insert_many(rows)
    seen: list[int] = []
    page = store.query(AuditQuery(limit=7))
    while True:
        seen.extend(r.id for r in page.records)
        # New events between pages (newer than every row listed so far) never shift a page.
        store.insert_many(_rows(2, start=T0 + timedelta(hours=1)))
        if page.next_cursor is None:
            break
        page = store.query(AuditQuery(limit=7, cursor=page.next_cursor))
    assert len(seen) == len(set(seen)) == 100
    with store.engine.connect() as conn:
        first_100 = set(conn.execute(sa.select(EVENTS.c.id).where(
            EVENTS.c.at < T0 + timedelta(hours=1))).scalars())
    assert set(seen) == first_100
    # The last full page has no cursor when nothing is left: exactly `limit` rows remain.
    exact = store.query(AuditQuery(limit=2, until=T0 + timedelta(seconds=6)))
    tail = store.query(AuditQuery(limit=94, until=T0 + timedelta(seconds=6),
                                  cursor=exact.next_cursor))  # 95 at T0 and one at T0 + 5 s
    assert len(tail.records) == 94 and tail.next_cursor is None


# Not base64, wrong version tag, a time out of range, not numbers.
@pytest.mark.parametrize("cursor", ["", "x", "!!!", "djI6MToy",
                                    "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk6MQ", "djE6YTpi"])
def test_a_cursor_it_did_not_hand_out_is_refused(store: AuditStore, cursor: str) -> None:
    with pytest.raises(BadCursor):
        store.query(AuditQuery(cursor=cursor))


def test_cursor_round_trips_and_queries_validate() -> None:
    assert decode_cursor(encode_cursor(T0, 42)) == (T0, 42)
    with pytest.raises(ValueError, match="limit"):
        AuditQuery(limit=0)
    with pytest.raises(ValueError, match="limit"):
        AuditQuery(limit=501)
    with pytest.raises(ValueError, match="time zone"):
        AuditQuery(since=datetime(2026, 1, 1))


def test_purge_deletes_only_old_rows_in_bounded_passes(
        store: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PURGE_CHUNK", 10)
    monkeypatch.setattr(store_module, "PURGE_CHUNKS_PER_PASS", 3)
    store.insert_many(_rows(75, step=timedelta(minutes=1)))
    cutoff = T0 + timedelta(minutes=70)
    assert store.purge(cutoff) == (30, True)
    assert store.purge(cutoff) == (30, True)
    assert store.purge(cutoff) == (10, False)
    remaining = store.query(AuditQuery(limit=500)).records
    assert [r.at for r in remaining] == [T0 + timedelta(minutes=m) for m in range(74, 69, -1)]


def test_hostile_values_are_stored_cut_and_clean(store: AuditStore) -> None:
    event = AuditEvent(event="login.refused", outcome="rejected",
                       username="bad\x00name\udcff" + "é" * 400, detail="😀" * 2000,
                       client_addr="1" * 200)
    store.insert_many([to_row(T0.timestamp(), event)])
    (record,) = store.query(AuditQuery()).records
    assert record.username == "badname?" + "é" * 247
    assert record.detail == "😀" * 1000
    assert record.client_addr == "1" * 64


# -- the service on a runtime -----------------------------------------------------------------

def test_events_become_rows_off_the_request_path(runtime_for: Callable[..., Runtime],
                                                 tmp_path: Path) -> None:
    runtime = runtime_for({"keep_days": 30})
    service = audit_service(runtime)
    assert service.backend == "sqlite"
    for n in range(20):
        runtime.hooks.audit(_event(n), runtime)
    assert service.flush(10)
    page = service.query(AuditQuery(username="user0", limit=3))
    assert [r.client_addr for r in page.records] == ["10.0.0.18", "10.0.0.15", "10.0.0.12"]
    assert service.stats().written == 20 and service.stats().dropped == 0
    assert (tmp_path / "audit.db").stat().st_mode & 0o777 == 0o600


def test_startup_purges_rows_older_than_keep_days(runtime_for: Callable[..., Runtime],
                                                  tmp_path: Path) -> None:
    from zengine.sqltypes import open_sqlite

    engine = open_sqlite(tmp_path / "audit.db")
    MIGRATIONS.ensure_current(engine)
    now = datetime.now(UTC)
    AuditStore(engine).insert_many(
        _rows(3, start=now - timedelta(days=10), step=timedelta(0))
        + _rows(2, start=now - timedelta(days=5), step=timedelta(0)))
    engine.dispose()
    runtime = runtime_for({"keep_days": 7})
    service = audit_service(runtime)
    deadline = time.monotonic() + 10
    while service.stats().purged < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.stats().purged == 3
    assert service.count() == 2


def test_a_full_queue_drops_and_counts_and_never_blocks(
        runtime_for: Callable[..., Runtime], tmp_path: Path) -> None:
    runtime = runtime_for({"queue_size": 10, "batch_size": 5})
    service = audit_service(runtime)
    service.flush(10)
    # Hold SQLite's write lock: the writer cannot write, the queue fills.
    blocker = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}",
                               connect_args={"timeout": 30})
    conn = blocker.connect()
    conn.exec_driver_sql("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        with structlog.testing.capture_logs() as logs:
            for n in range(200):
                runtime.hooks.audit(_event(n), runtime)
        elapsed = time.perf_counter() - started
        stats = service.stats()
        assert stats.dropped >= 200 - 10 - 5 - 5  # queue + the batch in hand, with slack
        assert elapsed < 2.0, "submitting blocked on the database"
    finally:
        conn.exec_driver_sql("ROLLBACK")
        conn.close()
        blocker.dispose()
    assert service.flush(30)
    stats = service.stats()
    assert stats.written + stats.dropped == 200
    assert service.count() == stats.written
    (dropped,) = [line for line in logs if line["event"] == "audit.store_dropped"]
    assert dropped["log_level"] == "error" and dropped["reason"] == "queue full"


def test_store_off_is_log_only(runtime_for: Callable[..., Runtime], tmp_path: Path) -> None:
    runtime = runtime_for({"store": "off"})
    service = audit_service(runtime)
    runtime.hooks.audit(_event(1), runtime)
    assert service.flush(1) and service.stats().backend == "off"
    with pytest.raises(AuditStoreOff):
        service.query(AuditQuery())
    assert not (tmp_path / "audit.db").exists()


def test_store_sql_without_the_sql_plugin_is_a_config_error(
        runtime_for: Callable[..., Runtime]) -> None:
    with pytest.raises(ConfigError, match=r"store = \"sql\" needs the sql plugin"):
        runtime_for({"store": "sql"})


def test_an_unwritable_sqlite_path_is_reported_not_raised(
        runtime_for: Callable[..., Runtime], tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    runtime = runtime_for({"sqlite_path": str(blocked / "audit.db")})
    runtime.hooks.audit(_event(1), runtime)  # never raises on the request path
    service = audit_service(runtime)
    assert not service.flush(0.5)
    deadline = time.monotonic() + 5
    while not service.stats().last_error and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "cannot open" in service.stats().last_error
    with pytest.raises(BackendUnavailable):
        service.query(AuditQuery())


def test_store_lives_in_the_sql_backend_database(db_url: URL, runtime_for: Callable[..., Runtime],
                                                 tmp_path: Path) -> None:
    sql = {"url": url_text(db_url), "create_schema_on_start": True, "connect_timeout": 2,
           "statement_timeout": 10, "pool_timeout": 10}
    runtime = runtime_for({"store": "auto"}, extra=(("sql", zengine_sql),),
                          plugins={"sql": sql})
    service = audit_service(runtime)
    assert service.backend == "sql"
    done = threading.Event()

    def burst() -> None:
        for n in range(50):
            runtime.hooks.audit(_event(n), runtime)
        done.set()

    workers = [threading.Thread(target=burst) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert service.flush(30)
    assert service.count() == 200
    assert not (tmp_path / "audit.db").exists()
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(EVENTS)).scalar() == 200
    finally:
        with engine.begin() as conn:
            conn.execute(EVENTS.delete())
        engine.dispose()


def test_flush_waits_for_what_was_queued_before_not_for_an_idle_queue(
        runtime_for: Callable[..., Runtime]) -> None:
    """A busy server's queue is never empty; flush still returns once the events queued
    before it are written."""
    runtime = runtime_for({"batch_size": 50})
    service = audit_service(runtime)
    stop = threading.Event()

    def produce() -> None:
        deadline = time.monotonic() + 30  # bounded
        while not stop.is_set() and time.monotonic() < deadline:
            runtime.hooks.audit(_event(1), runtime)
            time.sleep(0.0005)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(0.3)
        for n in range(5):
            runtime.hooks.audit(_event(n, event="marker.event"), runtime)
        assert service.flush(20)
        assert producer.is_alive()  # events kept arriving while flush waited
        markers = service.query(AuditQuery(events=("marker.event",))).records
        assert len(markers) == 5
    finally:
        stop.set()
        producer.join(30)
