"""What a token is, without the database: its row, the outcome of a fetch, the digest.

Kept apart from :mod:`zengine_tokens.store` so that a server whose tokens are never used does
not import SQLAlchemy (about 25 MB per worker): the store and its schema load on first use."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

#: 32 random bytes: 256 bits, 43 URL-safe characters (``A-Z a-z 0-9 - _``).
TOKEN_BYTES = 32
#: Longest token the endpoint looks up; anything longer is refused without a query.
MAX_TOKEN_LENGTH = 128

State = Literal["active", "used", "expired", "revoked"]
Refusal = Literal["unknown", "expired", "used", "revoked", "malformed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def digest(token: str) -> str:
    """What the store keeps and looks up: SHA-256 of the token, hex. A token has 256 bits of
    entropy, so a fast unsalted hash is enough (nothing to brute-force)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class TokenRow:
    id: str
    tenant: str
    username: str
    account: str | None
    purpose: str
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int
    replay_seconds: int
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_addr: str | None
    issued_by: str
    #: The user's own tenant when issued; ``None`` for a row from before it was recorded.
    user_tenant: str | None = None

    def state(self, now: datetime) -> State:
        if self.revoked_at is not None:
            return "revoked"
        if self.uses >= self.max_uses:
            return "used"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def replayable(self, addr: str, now: datetime) -> bool:
        """A retry of the last use: same address, within the window, not revoked since."""
        return (self.revoked_at is None and self.uses > 0 and self.replay_seconds > 0
                and self.last_used_at is not None and self.last_used_addr == addr
                and now - self.last_used_at <= timedelta(seconds=self.replay_seconds))


@dataclass(frozen=True)
class Consumed:
    """The outcome of one fetch: ``used`` (this fetch consumed a use), ``replay`` (a retry of
    the last use in its window) or ``refused`` with the reason, for the audit log only."""

    outcome: Literal["used", "replay", "refused"]
    row: TokenRow | None = None
    reason: Refusal | None = None
