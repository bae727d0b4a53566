"""API keys: create (printed once), list, revoke, and check a presented key.

A key reads ``zk_<id>_<secret>``: ``id`` is 12 hex characters, public, the row's primary key;
``secret`` is 32 random bytes (43 URL-safe characters). The store keeps HMAC-SHA256 of the
whole key (keyed with ``[plugins.admin] key_pepper`` when set), never the key: a key carries
256 random bits, so a fast keyed digest is as strong as a slow password hash and costs
microseconds per request instead of the argon2 verification pool.

Where keys live: the SQL backend's database when ``[plugins.sql] url`` is set (``store =
"auto"``), so every server sharing the database accepts every key and the CLI on any host
manages them; else an embedded SQLite file (``sqlite_path``, mode 0600).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zengine.errors import BackendUnavailable, ConfigError
from zengine.settings import resolve_secret
from zengine_admin.settings import NAME, AdminSettings

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    from zengine.runtime import Runtime

# SQLAlchemy, the schema and Alembic (~25 MB per worker) are imported where a key is first
# looked at, not with the plugin: the key store is built at every startup, and most servers
# never see an API key.

Scope = Literal["read", "tokens", "write"]
SCOPES: tuple[Scope, ...] = ("read", "tokens", "write")
#: What each scope may do, as a rank: ``write`` includes ``tokens``, which includes ``read``.
SCOPE_RANK: dict[str, int] = {"read": 0, "tokens": 1, "write": 2}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KEY_RE = re.compile(r"zk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})", re.ASCII)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", re.ASCII)
TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
#: Longest ``Authorization`` value looked at; anything longer is a bad key without parsing.
MAX_KEY_LENGTH = 128
#: ``last_used_at`` is written at most this often per key: not a database write per request.
LAST_USED_EVERY = timedelta(seconds=60)
_LABEL = b"zengine-api-key-v1:"


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """CIDR networks (or single addresses); ``ValueError`` naming the bad entry."""
    networks: list[Network] = []
    for entry in entries:
        for part in entry.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"--allow {part!r}: not an address or CIDR network "
                                 "(e.g. 192.0.2.0/24, 2001:db8::/32)") from None
    return tuple(networks)


@dataclass(frozen=True)
class ApiKey:
    """A stored key as lists show it: never the key, never its digest."""

    id: str
    name: str
    scope: Scope
    tenant: str | None
    allow: tuple[Network, ...]
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    last_used: datetime | None
    last_used_addr: str | None

    def state(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"

    def allows(self, client_addr: str) -> bool:
        if not self.allow:
            return True
        try:
            address = ipaddress.ip_address(client_addr)
        except ValueError:
            return False
        return any(address in network for network in self.allow)

    def may(self, scope: Scope) -> bool:
        return SCOPE_RANK[self.scope] >= SCOPE_RANK[scope]


@dataclass(frozen=True)
class CreatedKey:
    """A key just created: the only time the key itself exists outside its holder."""

    key: str
    info: ApiKey

    def __repr__(self) -> str:
        return f"CreatedKey(id={self.info.id!r}, name={self.info.name!r})"


Refusal = Literal["malformed", "unknown", "wrong", "revoked", "expired", "address"]


@dataclass(frozen=True)
class Checked:
    """The outcome of checking a presented key: the key, or why it was refused (for the audit
    trail only: every refusal gets the same answer)."""

    key: ApiKey | None
    refusal: Refusal | None = None


def _info(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    allow = parse_networks([str(m["allow"])]) if m["allow"] else ()
    return ApiKey(id=m["id"], name=m["name"], scope=m["scope"], tenant=m["tenant"], allow=allow,
                  created=m["created_at"], expires=m["expires_at"], revoked=m["revoked_at"],
                  last_used=m["last_used_at"], last_used_addr=m["last_used_addr"])


def _unavailable_on_error() -> contextlib.AbstractContextManager[None]:
    from zengine.sqltypes import unavailable_on_error

    return unavailable_on_error("api keys")


def _columns() -> list[sa.Column[Any]]:
    from zengine_admin.schema import API_KEYS

    return [c for c in API_KEYS.c if c.name != "key_hash"]


class KeyStore:
    """Create, list, revoke and check API keys. Thread-safe; one per runtime."""

    def __init__(self, runtime: Runtime, config: AdminSettings) -> None:
        self.runtime = runtime
        self.config = config
        pepper = resolve_secret(config.key_pepper, config.key_pepper_file, runtime.settings,
                                "[plugins.admin] key_pepper")
        self._hmac_key = _LABEL + (pepper.get_secret_value().encode() if pepper else b"")
        # Compared against when the id is unknown, so that an unknown id and a wrong secret
        # do the same work.
        self._dummy = self.digest("zk_000000000000_" + "A" * 43)
        self._engine: Engine | None = None
        self._own_engine: Engine | None = None
        self._lock = threading.Lock()
        self._touched: dict[str, datetime] = {}

    # -- store -------------------------------------------------------------------------
    def _sql_engine(self) -> Engine | None:
        engine = getattr(self.runtime.state.get("sql"), "engine", None)
        if engine is None:
            return None
        from sqlalchemy.engine import Engine  # loaded already: the SQL backend made one

        return engine if isinstance(engine, Engine) else None

    def check(self) -> None:
        if self.config.store == "sql" and self._sql_engine() is None:
            raise ConfigError('[plugins.admin] store = "sql" needs the sql plugin with '
                              "[plugins.sql] url set")

    @property
    def backend(self) -> Literal["sql", "sqlite"]:
        if self.config.store == "sqlite" or self._sql_engine() is None:
            return "sqlite"
        return "sql"

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from zengine.sqltypes import open_sqlite
                from zengine_admin import migrate

                engine = self._sql_engine() if self.backend == "sql" else None
                with _unavailable_on_error():
                    if engine is None:
                        path = self.runtime.settings.resolve_path(self.config.sqlite_path)
                        try:
                            engine = self._own_engine = open_sqlite(Path(path))
                        except OSError as exc:
                            raise BackendUnavailable(
                                f"api keys: cannot open {path}: {exc.strerror}") from None
                    migrate.ensure_current(engine)
                self._engine = engine
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._own_engine is not None:
                self._own_engine.dispose()
            self._own_engine = self._engine = None

    # -- keys --------------------------------------------------------------------------
    def digest(self, key: str) -> str:
        return hmac.new(self._hmac_key, key.encode("ascii", "replace"),
                        hashlib.sha256).hexdigest()

    def create(self, name: str, scope: Scope, *, tenant: str | None = None,
               expires: timedelta | None = None, allow: Sequence[str] = ()) -> CreatedKey:
        """A new key; ``ValueError`` naming the bad argument."""
        import sqlalchemy as sa

        from zengine_admin.schema import API_KEYS

        if not NAME_RE.fullmatch(name):
            raise ValueError(f"--name {name!r}: 1-64 letters, digits, '.', '_', '@', '-', "
                             "starting with a letter or digit")
        if scope not in SCOPES:
            raise ValueError(f"--scope {scope!r}: one of {', '.join(SCOPES)}")
        if tenant is not None and not TENANT_RE.fullmatch(tenant):
            raise ValueError(f"--tenant {tenant!r}: 1-64 letters, digits, '.', '_', '-'")
        if expires is not None and not timedelta(minutes=1) <= expires <= timedelta(days=3660):
            raise ValueError("--expires: between 1 minute and 10 years")
        networks = parse_networks(allow)
        allow_text = ",".join(str(n) for n in networks) or None
        if allow_text is not None and len(allow_text) > 1024:
            raise ValueError("--allow: too many networks (1024 characters at most)")
        key_id = secrets.token_hex(6)
        key = f"zk_{key_id}_{secrets.token_urlsafe(32)}"
        now = utcnow()
        values = {"id": key_id, "name": name, "key_hash": self.digest(key), "scope": scope,
                  "tenant": tenant, "allow": allow_text, "created_at": now,
                  "expires_at": now + expires if expires is not None else None,
                  "revoked_at": None, "last_used_at": None, "last_used_addr": None}
        with _unavailable_on_error():
            with self.engine.begin() as conn:
                taken = conn.execute(sa.select(API_KEYS.c.id)
                                     .where(API_KEYS.c.name == name)).first()
                if taken is not None:
                    raise ValueError(f"--name {name!r}: a key of that name exists (revoked "
                                     "keys keep their name, so the audit trail stays "
                                     "unambiguous)")
                conn.execute(API_KEYS.insert().values(**values))
        info = ApiKey(id=key_id, name=name, scope=scope,
                      tenant=tenant, allow=networks, created=now,
                      expires=now + expires if expires is not None else None,
                      revoked=None, last_used=None, last_used_addr=None)
        return CreatedKey(key, info)

    def list(self) -> list[ApiKey]:
        import sqlalchemy as sa

        from zengine_admin.schema import API_KEYS

        with _unavailable_on_error(), self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_columns()).order_by(API_KEYS.c.name)).all()
        return [_info(row) for row in rows]

    def get(self, name_or_id: str) -> ApiKey | None:
        import sqlalchemy as sa

        from zengine_admin.schema import API_KEYS

        with _unavailable_on_error(), self.engine.connect() as conn:
            row = conn.execute(sa.select(*_columns()).where(sa.or_(
                API_KEYS.c.name == name_or_id, API_KEYS.c.id == name_or_id))).first()
        return _info(row) if row is not None else None

    def revoke(self, name_or_id: str) -> ApiKey | None:
        """Revoke a live key by name or id; ``None`` when there is none."""
        import sqlalchemy as sa

        from zengine_admin.schema import API_KEYS

        with _unavailable_on_error(), self.engine.begin() as conn:
            done = conn.execute(API_KEYS.update().where(
                sa.or_(API_KEYS.c.name == name_or_id, API_KEYS.c.id == name_or_id),
                API_KEYS.c.revoked_at.is_(None)).values(revoked_at=utcnow())).rowcount
        return self.get(name_or_id) if done else None

    def authenticate(self, presented: str, client_addr: str) -> Checked:
        """Check a presented key. Every path does one primary-key lookup (a malformed key
        looks up an id no key has) and one constant-time digest comparison, so the answer's
        timing tells nothing; the HTTP layer also holds every refusal to the failure floor."""
        import sqlalchemy as sa

        from zengine_admin.schema import API_KEYS

        match = KEY_RE.fullmatch(presented) if len(presented) <= MAX_KEY_LENGTH else None
        key_id = match["id"] if match else "-"
        digest = self.digest(presented if match else "")
        with _unavailable_on_error(), self.engine.connect() as conn:
            row = conn.execute(sa.select(API_KEYS).where(API_KEYS.c.id == key_id)).first()
        stored = str(row._mapping["key_hash"]) if row is not None else self._dummy
        same = hmac.compare_digest(digest, stored)
        if match is None:
            return Checked(None, "malformed")
        if row is None:
            return Checked(None, "unknown")
        if not same:
            return Checked(None, "wrong")
        info = _info(row)
        now = utcnow()
        state = info.state(now)
        if state != "active":
            return Checked(info, state)
        if not info.allows(client_addr):
            return Checked(info, "address")
        self._touch(info, client_addr, now)
        return Checked(info)

    def _touch(self, info: ApiKey, client_addr: str, now: datetime) -> None:
        from zengine_admin.schema import API_KEYS

        last = self._touched.get(info.id)
        if last is not None and now - last < LAST_USED_EVERY:
            return
        self._touched[info.id] = now
        with contextlib.suppress(BackendUnavailable), _unavailable_on_error(), \
                self.engine.begin() as conn:
            conn.execute(API_KEYS.update().where(API_KEYS.c.id == info.id)
                         .values(last_used_at=now, last_used_addr=client_addr[:64]))


def key_store(runtime: Runtime) -> KeyStore:
    """The runtime's key store, made on first use (the CLI uses it without the API on)."""
    store = runtime.state.get(f"{NAME}.keys")
    if not isinstance(store, KeyStore):
        store = KeyStore(runtime, runtime.config(NAME, AdminSettings))
        store.check()
        runtime.state[f"{NAME}.keys"] = store
    return store


__all__ = ["SCOPES", "ApiKey", "Checked", "CreatedKey", "KeyStore", "Scope", "key_store"]
