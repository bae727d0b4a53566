"""Alembic migrations from an empty database, on every database, through the packaged scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from zengine_sql import migrate
from zengine_sql.schema import VERSION_TABLE, metadata


@pytest.fixture
def engine(db_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    migrate.downgrade(engine, "base")
    engine.dispose()


def _tables(engine: sa.Engine) -> set[str]:
    return {name for name in sa.inspect(engine).get_table_names() if name.startswith("zengine_")}


def test_upgrade_from_empty_matches_the_models(engine: sa.Engine) -> None:
    assert migrate.current(engine) is None
    assert _tables(engine) == set()
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    assert _tables(engine) == {"zengine_tenants", "zengine_users", "zengine_sip_accounts",
                               VERSION_TABLE}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "version_table": VERSION_TABLE})
        diff = [d for d in compare_metadata(context, metadata())
                if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []


def test_lookup_columns_are_indexed(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    inspector = sa.inspect(engine)
    unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("zengine_users")}
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("zengine_users")}
    # The login lookup is on a unique index, whatever form the database reports it in.
    assert ("username",) in unique | indexed
    account_indexes = {tuple(i["column_names"])
                       for i in inspector.get_indexes("zengine_sip_accounts")}
    account_unique = {tuple(c["column_names"])
                      for c in inspector.get_unique_constraints("zengine_sip_accounts")}
    assert any(cols[0] == "user_id" for cols in account_indexes | account_unique)


def test_downgrade_and_upgrade_again(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert _tables(engine) <= {VERSION_TABLE}
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()


def test_version_table_does_not_clash_with_a_pbx_alembic(engine: sa.Engine) -> None:
    # Asterisk's ast-db-manage keeps its own alembic_version in the same database.
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('4da0c5f79a9c')"))
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
                "4da0c5f79a9c")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alembic_version"))
