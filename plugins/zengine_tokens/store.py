"""Token rows on a SQLAlchemy engine: issue, consume (one conditional UPDATE), revoke, list."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from zengine_tokens.rows import (
    MAX_TOKEN_LENGTH,
    TOKEN_BYTES,
    Consumed,
    Refusal,
    State,
    TokenRow,
    digest,
    new_id,
    new_token,
    utcnow,
)
from zengine_tokens.schema import TOKENS

__all__ = ["MAX_TOKEN_LENGTH", "TOKEN_BYTES", "Consumed", "Refusal", "State", "TokenRow",
           "TokenStore", "digest", "new_id", "new_token", "utcnow"]


_COLUMNS = [c for c in TOKENS.c if c.name != "token_hash"]


def _row(raw: Row[tuple[object, ...]]) -> TokenRow:
    return TokenRow(**dict(raw._mapping))


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, *, token_hash: str, tenant: str, username: str, account: str | None,
               purpose: str, now: datetime, expires_at: datetime, max_uses: int,
               replay_seconds: int, issued_by: str, revoke_older: bool,
               user_tenant: str | None = None) -> tuple[TokenRow, int]:
        """Insert a token; with ``revoke_older`` first revoke the user's live tokens for the
        same account and purpose, in the same transaction. Returns the row and how many
        were revoked."""
        values = {"id": new_id(), "token_hash": token_hash, "tenant": tenant,
                  "username": username, "account": account, "purpose": purpose,
                  "created_at": now, "expires_at": expires_at, "max_uses": max_uses,
                  "uses": 0, "replay_seconds": replay_seconds, "revoked_at": None,
                  "last_used_at": None, "last_used_addr": None, "issued_by": issued_by,
                  "user_tenant": user_tenant}
        revoked = 0
        with self.engine.begin() as conn:
            if revoke_older:
                account_match = (TOKENS.c.account.is_(None) if account is None
                                 else TOKENS.c.account == account)
                revoked = conn.execute(
                    TOKENS.update()
                    .where(TOKENS.c.tenant == tenant, TOKENS.c.username == username,
                           account_match, TOKENS.c.purpose == purpose,
                           TOKENS.c.revoked_at.is_(None), TOKENS.c.expires_at > now,
                           TOKENS.c.uses < TOKENS.c.max_uses)
                    .values(revoked_at=now)).rowcount
            conn.execute(TOKENS.insert().values(**values))
        del values["token_hash"]
        return TokenRow(**values), revoked  # type: ignore[arg-type]

    def consume(self, token_hash: str, addr: str, now: datetime) -> Consumed:
        """One atomic conditional UPDATE decides: of any number of concurrent fetches, at most
        ``max_uses - uses`` succeed, on every database, with no lock held in Python."""
        addr = addr[:64]
        with self.engine.begin() as conn:
            hit = conn.execute(
                TOKENS.update()
                .where(TOKENS.c.token_hash == token_hash, TOKENS.c.revoked_at.is_(None),
                       TOKENS.c.expires_at > now, TOKENS.c.uses < TOKENS.c.max_uses)
                .values(uses=TOKENS.c.uses + 1, last_used_at=now, last_used_addr=addr)
            ).rowcount
            raw = conn.execute(sa.select(*_COLUMNS).where(
                TOKENS.c.token_hash == token_hash)).first()
        if raw is None:
            return Consumed("refused", reason="unknown")
        row = _row(raw)
        if hit == 1:
            return Consumed("used", row)
        if row.replayable(addr, now):
            return Consumed("replay", row)
        state = row.state(now)
        return Consumed("refused", row, "used" if state == "active" else state)

    def release(self, row: TokenRow) -> None:
        """Give back the use a fetch consumed when it could not be answered (a backend was
        down): the token is not lost. The replay window goes with it."""
        with self.engine.begin() as conn:
            conn.execute(TOKENS.update()
                         .where(TOKENS.c.id == row.id, TOKENS.c.uses > 0)
                         .values(uses=TOKENS.c.uses - 1, last_used_at=None,
                                 last_used_addr=None))

    def get(self, token_id: str) -> TokenRow | None:
        with self.engine.connect() as conn:
            raw = conn.execute(sa.select(*_COLUMNS).where(TOKENS.c.id == token_id)).first()
        return _row(raw) if raw is not None else None

    def list(self, *, tenant: str, username: str | None = None) -> list[TokenRow]:
        query = sa.select(*_COLUMNS).where(TOKENS.c.tenant == tenant)
        if username is not None:
            query = query.where(TOKENS.c.username == username)
        query = query.order_by(TOKENS.c.created_at.desc(), TOKENS.c.id)
        with self.engine.connect() as conn:
            return [_row(raw) for raw in conn.execute(query)]

    def revoke(self, token_id: str, now: datetime) -> TokenRow | None:
        """Revoke one token by id; ``None`` when there is no such token or it was revoked."""
        with self.engine.begin() as conn:
            count = conn.execute(TOKENS.update()
                                 .where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None))
                                 .values(revoked_at=now)).rowcount
        return self.get(token_id) if count else None

    def revoke_user(self, *, tenant: str, username: str, now: datetime) -> int:
        """Revoke every token of the user that could still be fetched."""
        with self.engine.begin() as conn:
            return conn.execute(
                TOKENS.update()
                .where(TOKENS.c.tenant == tenant, TOKENS.c.username == username,
                       TOKENS.c.revoked_at.is_(None), TOKENS.c.expires_at > now,
                       TOKENS.c.uses < TOKENS.c.max_uses)
                .values(revoked_at=now)).rowcount

    def purge(self, now: datetime, *, tenant: str | None) -> int:
        """Delete ``tenant``'s expired tokens (used and revoked ones go once they expire
        too). Only that tenant's: tenants without a store of their own share this one.
        ``None``: every tenant's in this store (a tenant removed from the config included)."""
        expired = TOKENS.c.expires_at <= now
        where = expired if tenant is None else expired & (TOKENS.c.tenant == tenant)
        with self.engine.begin() as conn:
            return conn.execute(TOKENS.delete().where(where)).rowcount
