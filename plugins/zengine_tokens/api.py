"""The token service other plugins (the portal) and the CLI use.

``token_service(runtime)`` returns the running :class:`TokenService`; it opens its store on
first use (the SQL backend's engine, or the embedded SQLite file) and brings its schema up to
date. Every method may raise :class:`~zengine.errors.BackendUnavailable` when the store cannot
be reached.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from zengine.errors import BackendUnavailable, ConfigError, LoginFailed, NoAccounts
from zengine.models import AuditEvent, Readiness
from zengine_tokens import links
from zengine_tokens.qr import qr_png, qr_svg, qr_text
from zengine_tokens.rows import (
    MAX_TOKEN_LENGTH,
    Consumed,
    State,
    TokenRow,
    digest,
    new_token,
    utcnow,
)
from zengine_tokens.settings import PLUGIN_NAME, TokensSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from zengine.runtime import Runtime
    from zengine_tokens.store import TokenStore

__all__ = ["IssuedToken", "TokenInfo", "TokenService", "qr_png", "qr_svg", "qr_text",
           "token_service"]

TOKEN_RE = re.compile(f"[A-Za-z0-9_-]{{1,{MAX_TOKEN_LENGTH}}}", re.ASCII)
MAX_TTL = timedelta(days=366)


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the only time the token itself exists outside the user's phone."""

    id: str
    token: str
    username: str
    account: str | None
    tenant: str
    expires: datetime
    max_uses: int
    #: The QR-howto link (``provider_id`` configured), else the token URL itself, else ``""``.
    link: str

    def __repr__(self) -> str:
        return (f"IssuedToken(id={self.id!r}, username={self.username!r}, "
                f"account={self.account!r}, expires={self.expires.isoformat()!r})")


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as lists show it: never the token, only its id and state."""

    id: str
    username: str
    account: str | None
    tenant: str
    purpose: str
    state: State
    created: datetime
    expires: datetime
    max_uses: int
    uses: int
    revoked: datetime | None
    last_used: datetime | None
    last_used_addr: str | None
    issued_by: str


def _info(row: TokenRow, now: datetime) -> TokenInfo:
    return TokenInfo(id=row.id, username=row.username, account=row.account, tenant=row.tenant,
                     purpose=row.purpose, state=row.state(now), created=row.created_at,
                     expires=row.expires_at, max_uses=row.max_uses, uses=row.uses,
                     revoked=row.revoked_at, last_used=row.last_used_at,
                     last_used_addr=row.last_used_addr, issued_by=row.issued_by)


def _unavailable_on_error() -> contextlib.AbstractContextManager[None]:
    from zengine.sqltypes import unavailable_on_error

    return unavailable_on_error("tokens")


def sql_engine_of(runtime: Runtime) -> Engine | None:
    """The SQL backend's engine when it has one; SQLAlchemy is imported only then (it is
    loaded already): a server whose tokens are never used never imports it."""
    engine = getattr(runtime.state.get("sql"), "engine", None)
    if engine is None:
        return None
    from sqlalchemy.engine import Engine

    return engine if isinstance(engine, Engine) else None


class TokenService:
    """Issue, redeem, list and revoke tokens. Thread-safe; one per runtime."""

    def __init__(self, runtime: Runtime, config: TokensSettings, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.runtime = runtime
        self.config = config
        self.clock = clock
        self._store: TokenStore | None = None
        self._own_engine: Engine | None = None
        self._lock = threading.Lock()

    # -- store -------------------------------------------------------------------------
    def _sql_engine(self) -> Engine | None:
        return sql_engine_of(self.runtime)

    def check(self) -> None:
        """Refuse a store choice that cannot work (called at startup)."""
        if self.config.store == "sql" and self._sql_engine() is None:
            raise ConfigError("[plugins.tokens] store = \"sql\" needs the sql plugin with "
                              "[plugins.sql] url set")
        root = self.runtime.root
        if root is not None:
            # One endpoint, registered from the global settings, serves every tenant: a
            # tenant's own path or param would put a token URL nothing answers into its
            # documents and links, and a refusal is answered before any tenant is known.
            shared = root.config(PLUGIN_NAME, TokensSettings)
            differ = [name for name in ("path", "param", "refused_status")
                      if getattr(self.config, name) != getattr(shared, name)]
            if differ:
                raise ConfigError(
                    f"[tenants.{self.runtime.tenant}.plugins.tokens]: {', '.join(differ)} "
                    f"cannot differ per tenant: the one token endpoint "
                    f"({shared.path}?{shared.param}=) serves every tenant")

    @property
    def backend(self) -> str:
        if self.config.store == "sqlite" or self._sql_engine() is None:
            return "sqlite"
        return "sql"

    @property
    def location(self) -> str:
        """Where the tokens live (the database URL, or the SQLite file), to tell stores
        apart; never logged."""
        engine = self._sql_engine() if self.backend == "sql" else None
        if engine is not None:
            return engine.url.render_as_string(hide_password=False)
        return str(self.runtime.settings.resolve_path(self.config.sqlite_path))

    @property
    def store(self) -> TokenStore:
        with self._lock:
            if self._store is None:
                # The database layer loads with the first token operation, not at startup.
                from zengine.sqltypes import open_sqlite
                from zengine_tokens import migrate
                from zengine_tokens.store import TokenStore

                engine = self._sql_engine() if self.backend == "sql" else None
                with _unavailable_on_error():
                    if engine is None:
                        path = self.runtime.settings.resolve_path(self.config.sqlite_path)
                        try:
                            engine = self._own_engine = open_sqlite(path)
                        except OSError as exc:
                            raise BackendUnavailable(
                                f"tokens: cannot open {path}: {exc.strerror}") from None
                    migrate.ensure_current(engine)
                self._store = TokenStore(engine)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._own_engine is not None:
                self._own_engine.dispose()
            self._own_engine = None
            self._store = None

    def readiness(self) -> Readiness:
        """Whether the store can answer, without creating or migrating anything."""
        engine = self._sql_engine() if self.backend == "sql" else None
        if self._store is not None or engine is not None:
            return self._reachable(engine)
        # Not opened yet: the file, or the nearest directory it would be created in, must be
        # writable by this user.
        path = self.runtime.settings.resolve_path(self.config.sqlite_path)
        target = path
        while not target.exists() and target != target.parent:
            target = target.parent
        if target == path:
            usable = path.is_file() and os.access(path, os.R_OK | os.W_OK)
        else:
            usable = target.is_dir() and os.access(target, os.W_OK | os.X_OK)
        if not usable:
            return Readiness(PLUGIN_NAME, False, "token store not writable",
                             f"{path}: {target} is not a writable "
                             f"{'file' if target == path else 'directory'}")
        return Readiness(PLUGIN_NAME, True)

    def _reachable(self, engine: Engine | None) -> Readiness:
        import sqlalchemy as sa
        from sqlalchemy import exc as sa_exc

        from zengine_tokens import migrate
        from zengine_tokens.schema import TOKENS

        try:
            if self._store is not None:
                with self._store.engine.connect() as conn:
                    conn.execute(sa.select(sa.func.count()).select_from(TOKENS))
            elif engine is not None:
                migrate.current(engine)  # reachable; the schema is brought up at first use
        except sa_exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            return Readiness(PLUGIN_NAME, False, "token store unreachable",
                             f"{type(orig).__name__}: {(str(orig).splitlines() or [''])[0]}"
                             [:200])
        return Readiness(PLUGIN_NAME, True)

    # -- urls --------------------------------------------------------------------------
    @property
    def token_url(self) -> str | None:
        return links.token_url(self.config, self.runtime.settings)

    def link(self, token: str) -> str:
        return links.link_for(self.config, self.runtime.settings, token)

    # -- audit -------------------------------------------------------------------------
    def audit(self, event: str, outcome: str, *, username: str | None,
              client_addr: str | None, detail: str) -> None:
        self.runtime.hooks.audit(AuditEvent(event=event, outcome=outcome, username=username,
                                            backend=PLUGIN_NAME, client_addr=client_addr,
                                            detail=detail, tenant=self.runtime.tenant),
                                 self.runtime)

    # -- operations --------------------------------------------------------------------
    def _check_user(self, username: str, account: str | None) -> str:
        settings = self.runtime.settings
        identity = self.runtime.hooks.find_identity(username, self.runtime, settings.auth.chain)
        if identity is None:
            raise LoginFailed(f"No backend knows user {username!r}",
                              public_message=f"No backend knows user {username!r}.")
        if account is not None:
            idents = [a.ident for a in self.runtime.hooks.load_accounts(identity, self.runtime)]
            if account not in idents:
                raise NoAccounts(
                    f"user {username!r} has no account {account!r} (accounts: {idents})",
                    public_message=f"User {username!r} has no account {account!r}.")
        return identity.tenant or ""

    def issue(self, username: str, *, tenant: str = "", account: str | None = None,
              ttl: timedelta | None = None, uses: int | None = None,
              revoke_older: bool = True, actor: str = "cli",
              client_addr: str | None = None, purpose: str = "link",
              check_user: bool = True, user_tenant: str | None = None) -> IssuedToken:
        """A new token for ``username`` (one ``account`` ident, or all of the user's
        accounts). Unless ``revoke_older`` is false, the user's live tokens for the same
        account are revoked in the same transaction. The row records the user's own tenant
        (the check finds it; without the check, ``user_tenant`` says it), so the endpoint
        never answers with another user of that name."""
        ttl = self.config.ttl if ttl is None else ttl
        uses = self.config.max_uses if uses is None else uses
        if not username:
            raise ValueError("a token needs a username")
        if not timedelta(seconds=1) <= ttl <= MAX_TTL:
            raise ValueError("ttl must be between 1 second and 366 days")
        if not 1 <= uses <= 1000:
            raise ValueError("uses must be between 1 and 1000")
        if check_user:
            user_tenant = self._check_user(username, account)
        token = new_token()
        now = self.clock()
        with _unavailable_on_error():
            row, revoked = self.store.insert(
                token_hash=digest(token), tenant=tenant, username=username, account=account,
                purpose=purpose, now=now, expires_at=now + ttl, max_uses=uses,
                replay_seconds=int(self.config.replay_window.total_seconds()),
                issued_by=actor, revoke_older=revoke_older, user_tenant=user_tenant)
        self.audit("token.issued", "issued", username=username, client_addr=client_addr,
                   detail=f"id={row.id} account={account or '*'} purpose={purpose} "
                          f"uses={uses} expires={row.expires_at.isoformat()} actor={actor} "
                          f"revoked_older={revoked}")
        return IssuedToken(id=row.id, token=token, username=username, account=account,
                           tenant=tenant, expires=row.expires_at, max_uses=uses,
                           link=self.link(token))

    def redeem(self, token: str, client_addr: str) -> Consumed:
        """Consume one use of ``token`` (or recognise a retry in its replay window)."""
        if not TOKEN_RE.fullmatch(token):
            return Consumed("refused", reason="malformed")
        with _unavailable_on_error():
            return self.store.consume(digest(token), client_addr, self.clock())

    def release(self, row: TokenRow) -> None:
        with _unavailable_on_error():
            self.store.release(row)

    def list(self, username: str | None = None, *, tenant: str = "") -> list[TokenInfo]:
        now = self.clock()
        with _unavailable_on_error():
            return [_info(row, now) for row in self.store.list(tenant=tenant,
                                                               username=username)]

    def revoke(self, token_id: str, *, tenant: str = "", actor: str = "cli",
               client_addr: str | None = None) -> TokenInfo | None:
        """Revoke one token by id; ``None`` when no live token of ``tenant`` has that id."""
        with _unavailable_on_error():
            row = self.store.get(token_id)
            if row is None or row.tenant != tenant:
                return None
            row = self.store.revoke(token_id, self.clock())
        if row is None:
            return None
        self.audit("token.revoked", "revoked", username=row.username, client_addr=client_addr,
                   detail=f"id={row.id} actor={actor}")
        return _info(row, self.clock())

    def revoke_user(self, username: str, *, tenant: str = "", actor: str = "cli",
                    client_addr: str | None = None) -> int:
        """Revoke every token of ``username`` that could still be fetched; returns how many."""
        with _unavailable_on_error():
            count = self.store.revoke_user(tenant=tenant, username=username, now=self.clock())
        self.audit("token.revoked", "revoked", username=username, client_addr=client_addr,
                   detail=f"user count={count} actor={actor}")
        return count

    def purge(self, *, tenant: str | None = "") -> int:
        """Delete ``tenant``'s expired tokens; returns how many. Another tenant's rows in
        the same store (a tenant without a store of its own shares the global one) stay.
        ``None``: every expired token in this service's store, whatever its tenant."""
        with _unavailable_on_error():
            return self.store.purge(self.clock(), tenant=tenant)


def token_service(runtime: Runtime) -> TokenService:
    """The running runtime's token service (the tokens plugin must be loaded and started)."""
    service = runtime.state.get(PLUGIN_NAME)
    if not isinstance(service, TokenService):
        raise RuntimeError("the tokens plugin is not loaded or not started")
    return service
