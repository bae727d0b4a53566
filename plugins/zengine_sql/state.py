"""What the plugin keeps in ``runtime.state["sql"]`` between startup and shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pydantic import SecretStr
from sqlalchemy.engine import URL, Connection, Engine

from zengine.errors import AccountDataError
from zengine.logincache import LocalEntries, LoginCache, LoginCacheSettings
from zengine.passwords import Passwords
from zengine_sql.crypto import SecretBox
from zengine_sql.deadline import Watchdog
from zengine_sql.engine import unavailable_on_error
from zengine_sql.settings import MappingSettings, SqlSettings


def _verified_var() -> ContextVar[tuple[str, SecretStr] | None]:
    return ContextVar("zengine_sql_verified", default=None)


@dataclass
class SqlState:
    config: SqlSettings
    url: URL
    engine: Engine
    box: SecretBox | None
    mapping: MappingSettings | None
    #: argon2id with the ``[passwords]`` parameters (the runtime's).
    passwords: Passwords = field(default_factory=Passwords)
    #: The runtime's verified-login cache (a private, disabled one when built without one).
    logins: LoginCache = field(default_factory=lambda: LoginCache(
        LoginCacheSettings(enabled=False), b"", LocalEntries(16)))
    #: The password a mapped login was just verified with, for HA1-only rows whose SIP
    #: password the database cannot give back. A context variable: one request's value is
    #: invisible to every other request (each runs in its own copied context).
    verified: ContextVar[tuple[str, SecretStr] | None] = field(default_factory=_verified_var)
    #: Gate and deadline of request-path operations (see zengine_sql.deadline).
    watchdog: Watchdog | None = None
    #: The tenant whose rows this state serves (a tenant's runtime); ``None``: every row, as
    #: before tenants (the global runtime, the CLI without ``--tenant``).
    tenant: str | None = None

    @contextlib.contextmanager
    def connect(self, *, begin: bool = False) -> Iterator[Connection]:
        """A connection for the request path: bounded in time and in number; database
        trouble is :class:`BackendUnavailable` (503)."""
        with unavailable_on_error(self.url):
            if self.watchdog is None:
                with self.engine.begin() if begin else self.engine.connect() as conn:
                    yield conn
            else:
                with self.watchdog.connection(begin=begin) as conn:
                    yield conn

    def __repr__(self) -> str:
        return f"SqlState(backend={self.url.get_backend_name()!r}, mode={self.config.mode!r})"

    def require_box(self) -> SecretBox:
        if self.box is None:
            raise AccountDataError("[plugins.sql] SIP passwords need an encryption key: set "
                                   "encryption_keys (make one with `zengine db generate-key`)")
        return self.box
