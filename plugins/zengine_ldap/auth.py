"""The backend: authenticate, find an identity, load accounts — in search or direct bind mode.

Outcomes follow the hook contract: an :class:`Identity` accepts, :class:`Rejected` means the
directory has this user and the login fails (wrong password, disabled, ambiguous name), and
``None`` means the directory does not know the name, so a later backend may.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from ldap3 import Connection
from pydantic import SecretStr

from zengine.errors import BackendUnavailable
from zengine.logincache import LoginCache, LoginKey
from zengine.models import (
    Abstain,
    Account,
    AuthResult,
    Identity,
    Observation,
    Readiness,
    Rejected,
)
from zengine.settings import Settings
from zengine.verifying import announce_verification
from zengine_ldap.directory import Reader, fill_dn, read_entry, user_bind
from zengine_ldap.mapping import (
    DN_ATTRIBUTE,
    NAME,
    Entry,
    account_attributes,
    identity_for,
    is_disabled,
    user_attributes,
)
from zengine_ldap.pool import ConnectionPool, ServiceBindFailed
from zengine_ldap.servers import ServerList
from zengine_ldap.settings import LdapSettings

log = structlog.get_logger("zengine_ldap")
_BIND_REAL = Observation("password.bind", "real", NAME)
_BIND_DUMMY = Observation("password.bind", "dummy", NAME)


class Handoff:
    """Accounts read while the login's connection was at hand, kept for the same request's
    ``zengine_load_accounts`` (which gets only the identity). In direct mode this is the
    only way to use the user's own read rights; in search mode it saves a second read.
    Entries expire after ``ttl`` seconds; at most ``size`` are kept."""

    def __init__(self, ttl: float = 30.0, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[str, tuple[float, list[Account]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, dn: str, accounts: list[Account]) -> None:
        with self._lock:
            self._items[dn.lower()] = (time.monotonic() + self.ttl, accounts)
            self._items.move_to_end(dn.lower())
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def take(self, dn: str) -> list[Account] | None:
        with self._lock:
            item = self._items.pop(dn.lower(), None)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]


@dataclass(frozen=True)
class _Login:
    identity: Identity
    accounts: list[Account]


class LdapBackend:
    def __init__(self, config: LdapSettings, settings: Settings,
                 service_password: SecretStr | None, logins: LoginCache | None = None,
                 observe: Callable[[Observation], None] | None = None) -> None:
        self.config = config
        #: Told of every user bind (``password.bind``, ``real`` or ``dummy``).
        self.observe = observe
        #: The verified-login cache: a hit skips the user bind (search mode only), never the
        #: search, so a disabled or removed entry is still refused.
        self.logins = logins
        self.servers = ServerList(config, settings)
        # Searches and reads as the service account (or anonymously).
        self.search_pool = ConnectionPool("search", self.servers, config,
                                          config.service_dn, service_password)
        # User binds: each borrow rebinds as the user logging in.
        self.bind_pool = ConnectionPool("bind", self.servers, config)
        self.reader = Reader(config)
        self.handoff = Handoff()

    def readiness(self) -> Readiness:
        """The directory answers and the service account (or an anonymous search) binds."""
        try:
            self.search_pool.probe()
        except ServiceBindFailed as exc:
            return Readiness(NAME, False, "service bind refused", str(exc))
        except BackendUnavailable as exc:
            return Readiness(NAME, False, "directory unreachable", exc.detail)
        return Readiness(NAME, True)

    def close(self) -> None:
        self.search_pool.close()
        self.bind_pool.close()

    # -- authenticate ----------------------------------------------------------------------

    def authenticate(self, username: str,
                     password: SecretStr) -> AuthResult | Abstain | None:
        secret = password.get_secret_value()
        if not secret:
            # An LDAP simple bind with an empty password is an *unauthenticated* bind that
            # servers answer with success (RFC 4513 5.1.2): never send one.
            return Rejected(NAME, "empty password")
        if not username.strip():
            # ldap3 strips filter values: a blank name would become an empty assertion.
            return None
        if self.config.bind_mode == "direct":
            return self._authenticate_direct(username, secret)
        return self._authenticate_search(username, secret)

    def _authenticate_search(self, username: str, secret: str) -> AuthResult | Abstain | None:
        attributes = user_attributes(self.config, with_accounts=True)
        found = self.search_pool.run(
            lambda conn: self.reader.find_users(conn, username, attributes))
        if not found:
            self._equalise(secret)
            # Spent: the core must not add an argon2 verification a wrong password never pays.
            return Abstain(NAME)
        if len(found) > 1:
            log.warning("ldap.ambiguous_user", username=username, matches=len(found))
            return Rejected(NAME, "username matches several directory entries")
        entry = found[0]
        if is_disabled(entry, self.config):
            return Rejected(NAME, "account disabled")
        start_tls = self.config.start_tls

        def bind() -> bool:
            # A cache miss: the bind is this backend's slow verification.
            announce_verification()
            self._spent(_BIND_REAL)
            return self.bind_pool.run(lambda conn: user_bind(conn, entry.dn, secret, start_tls))

        # The DN is the cache's material: an entry renamed or replaced never hits.
        verified = (self.logins.verify(LoginKey(NAME, None, username, entry.dn), secret, bind)
                    if self.logins is not None else bind())
        if not verified:
            return Rejected(NAME, "wrong password")
        login = self.search_pool.run(lambda conn: self._complete(conn, entry, username))
        self.handoff.put(entry.dn, login.accounts)
        return login.identity

    def _equalise(self, secret: str) -> None:
        """Bind once as a DN that does not exist, so an unknown user costs what a wrong
        password costs (one search, one bind) and timing does not tell them apart."""
        dn = f"cn=zengine-no-such-user,{self.config.search_base}"
        start_tls = self.config.start_tls
        announce_verification()
        self._spent(_BIND_DUMMY)
        self.bind_pool.run(lambda conn: user_bind(conn, dn, secret, start_tls))

    def _spent(self, observation: Observation) -> None:
        if self.observe is not None:
            self.observe(observation)

    def _authenticate_direct(self, username: str, secret: str) -> AuthResult | Abstain | None:
        dn = fill_dn(self.config.user_dn_template or "", username=username)
        start_tls = self.config.start_tls
        attributes = user_attributes(self.config, with_accounts=True)

        def bind_and_read(conn: Connection) -> _Login | Rejected | None:
            # Unknown or not, the bind is spent (the server cannot tell before it).
            self._spent(_BIND_REAL)
            if not user_bind(conn, dn, secret, start_tls):
                return None
            # Read with the user's own rights, on the connection the user just bound.
            entry = self.reader.read_user(conn, dn, username, attributes) or Entry(dn)
            if is_disabled(entry, self.config):
                return Rejected(NAME, "account disabled")
            return self._complete(conn, entry, username)

        announce_verification()  # every direct login binds: no cache in this mode
        result = self.bind_pool.run(bind_and_read)
        if result is None:
            # The server says "invalid credentials" for unknown DNs too: ask whether the
            # entry exists (service account or anonymous) to tell reject from abstain.
            exists = self.search_pool.run(
                lambda conn: self.reader.read_user(conn, dn, username, []) is not None)
            # One bind and one read either way: the cost is spent.
            return Rejected(NAME, "wrong password") if exists else Abstain(NAME)
        if isinstance(result, Rejected):
            return result
        self.handoff.put(result.identity.attributes[DN_ATTRIBUTE], result.accounts)
        return result.identity

    def _complete(self, conn: Connection, entry: Entry, username: str) -> _Login:
        groups = self.reader.groups(conn, entry, username)
        accounts = self.reader.accounts(conn, entry, username)
        return _Login(identity_for(entry, username, groups, self.config), accounts)

    # -- operator lookups and accounts -----------------------------------------------------

    def find_identity(self, username: str) -> Identity | None:
        """The identity a login would get, read as the service account (or anonymously)."""
        if not username.strip():
            return None
        attributes = user_attributes(self.config, with_accounts=True)

        def lookup(conn: Connection) -> _Login | None:
            if self.config.bind_mode == "direct":
                dn = fill_dn(self.config.user_dn_template or "", username=username)
                entry = self.reader.read_user(conn, dn, username, attributes)
            else:
                found = self.reader.find_users(conn, username, attributes)
                entry = found[0] if len(found) == 1 else None
            if entry is None or is_disabled(entry, self.config):
                return None
            return self._complete(conn, entry, username)

        login = self.search_pool.run(lookup)
        if login is None:
            return None
        self.handoff.put(login.identity.attributes[DN_ATTRIBUTE], login.accounts)
        return login.identity

    def load_accounts(self, identity: Identity) -> list[Account] | None:
        if self.config.accounts_from == "none" or identity.backend != NAME:
            return None
        dn = identity.attributes.get(DN_ATTRIBUTE)
        if not dn:
            return None
        accounts = self.handoff.take(dn)
        if accounts is not None:
            return accounts
        # No login just before (or it expired): read the entry again as the service account.
        attributes = account_attributes(self.config) + user_attributes(self.config, True)

        def read(conn: Connection) -> list[Account]:
            entry = read_entry(conn, dn, attributes)
            return self.reader.accounts(conn, entry, identity.username) if entry else []

        return self.search_pool.run(read)
