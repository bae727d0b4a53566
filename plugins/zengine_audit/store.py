"""Audit rows on a SQLAlchemy engine: batched inserts, keyset-paged queries, bounded purges."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from zengine_audit.records import MAX_LIMIT, AuditPage, AuditQuery, AuditRecord, BadCursor
from zengine_audit.schema import EVENTS, LIMITS

__all__ = ["MAX_LIMIT", "AuditPage", "AuditQuery", "AuditRecord", "AuditStore", "BadCursor",
           "clean", "decode_cursor", "encode_cursor"]

#: Rows one purge statement deletes at most (and ids bound per statement: SQLite before 3.32
#: allows 999 parameters).
PURGE_CHUNK = 900
#: Statements one purge pass runs at most; what is left waits for the next pass.
PURGE_CHUNKS_PER_PASS = 100


def encode_cursor(at: datetime, row_id: int) -> str:
    micros = int((at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    return base64.urlsafe_b64encode(f"v1:{micros}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        tag, micros, row_id = raw.split(":")
        if tag != "v1":
            raise ValueError(tag)
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
        return at, int(row_id)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError):
        raise BadCursor("not a cursor of this audit store") from None


def clean(value: object, column: str) -> str | None:
    """A value as the column can keep it on every database: cut to the column's length, NUL
    dropped (PostgreSQL refuses it), lone surrogates replaced (no encoding error)."""
    if value is None:
        return None
    text = str(value).replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:LIMITS[column]]


_COLUMNS = list(EVENTS.c)


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(EVENTS.insert(), list(rows))

    def query(self, query: AuditQuery) -> AuditPage:
        stmt = sa.select(*_COLUMNS)
        c = EVENTS.c
        if query.tenant is not None:
            stmt = stmt.where(c.tenant == query.tenant)
        if query.username is not None:
            stmt = stmt.where(c.username == query.username)
        if query.since is not None:
            stmt = stmt.where(c.at >= query.since)
        if query.until is not None:
            stmt = stmt.where(c.at < query.until)
        if query.outcomes:
            stmt = stmt.where(c.outcome.in_(query.outcomes))
        if query.events:
            matches = [c.event.startswith(e[:-1], autoescape=True) if e.endswith("*")
                       else c.event == e for e in query.events]
            stmt = stmt.where(sa.or_(*matches))
        if query.cursor is not None:
            at, row_id = decode_cursor(query.cursor)
            stmt = stmt.where(sa.or_(c.at < at, sa.and_(c.at == at, c.id < row_id)))
        stmt = stmt.order_by(c.at.desc(), c.id.desc()).limit(query.limit + 1)
        with self.engine.connect() as conn:
            raws = conn.execute(stmt).all()
        records = tuple(AuditRecord(**dict(raw._mapping)) for raw in raws[:query.limit])
        more = len(raws) > query.limit
        last = records[-1] if records else None
        return AuditPage(records, encode_cursor(last.at, last.id) if more and last else None)

    def purge(self, before: datetime) -> tuple[int, bool]:
        """Delete rows older than ``before`` in short statements (no long lock on a busy
        table); returns how many and whether rows are left for another pass."""
        deleted = 0
        for _ in range(PURGE_CHUNKS_PER_PASS):
            with self.engine.begin() as conn:
                # Ids first: MariaDB has no LIMIT in an IN subquery, PostgreSQL no DELETE LIMIT.
                ids = list(conn.execute(sa.select(EVENTS.c.id).where(EVENTS.c.at < before)
                                        .order_by(EVENTS.c.id).limit(PURGE_CHUNK)).scalars())
                if not ids:
                    return deleted, False
                deleted += conn.execute(EVENTS.delete().where(EVENTS.c.id.in_(ids))).rowcount
        return deleted, True
