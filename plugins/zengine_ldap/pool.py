"""Bounded pools of open ldap3 connections, with failover and one retry on a stale socket.

An ldap3 ``SYNC`` connection must not be shared between threads mid-operation, so each
request borrows a connection for the whole of one directory operation and gives it back.
Connections are opened lazily: a directory that is down at startup costs nothing until a
request needs it, and one that comes back is used again without a restart.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from ldap3 import SIMPLE, SYNC, Connection
from ldap3.core.exceptions import (
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)
from pydantic import SecretStr

from zengine.errors import BackendUnavailable
from zengine_ldap.servers import Endpoint, ServerList
from zengine_ldap.settings import LdapSettings

T = TypeVar("T")
log = structlog.get_logger("zengine_ldap")

#: Errors that mean "this server cannot talk to us now", as opposed to an LDAP result.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    LDAPCommunicationError, LDAPStartTLSError, LDAPCertificateError, LDAPSSLConfigurationError,
    ssl.SSLError, OSError,
)
#: Result codes that say the server, not the request, is the problem (RFC 4511 4.1.9).
SERVER_TROUBLE = frozenset({51, 52, 80})  # busy, unavailable, other


def simple_bind(conn: Connection, dn: str, password: str) -> bool:
    """Simple bind as ``dn``: ``False`` for refused credentials; a busy or unavailable server
    raises, so the caller fails over instead of calling the password wrong."""
    conn.authentication = SIMPLE
    conn.user = dn
    conn.password = password
    try:
        ok = bool(conn.bind(read_server_info=False))
    finally:
        # ldap3's Connection repr prints the password: keep it no longer than the bind.
        conn.password = None
    if not ok:
        code = conn.result.get("result") if conn.result else None
        if code in SERVER_TROUBLE:
            raise LDAPCommunicationError(f"bind answered {conn.result.get('description')}")
    return ok


class ServiceBindFailed(Exception):
    """The configured service account cannot bind: an operator problem, reported as 503."""


@dataclass
class Pooled:
    conn: Connection
    endpoint: Endpoint


def describe(exc: BaseException) -> str:
    # ldap3 and ssl messages name hosts and errnos, never credentials.
    return f"{type(exc).__name__}: {exc}"[:300]


class ConnectionPool:
    """At most ``size`` connections; each is bound as ``bind_dn`` (or anonymous) when opened."""

    def __init__(self, name: str, servers: ServerList, config: LdapSettings,
                 bind_dn: str | None = None, bind_password: SecretStr | None = None) -> None:
        self.name = name
        self.servers = servers
        self.config = config
        self.bind_dn = bind_dn
        self._bind_password = bind_password
        self._idle: list[Pooled] = []
        self._count = 0
        #: Connections opened since startup (a health figure: stays at most ``pool_size``
        #: while the directory is healthy).
        self.opened = 0
        self._closed = False
        self._cond = threading.Condition()

    def __repr__(self) -> str:
        return f"ConnectionPool({self.name!r}, size={self.config.pool_size}, open={self._count})"

    @property
    def open_connections(self) -> int:
        return self._count

    # -- borrowing -------------------------------------------------------------------------

    def _borrow(self) -> Pooled | None:
        """An idle connection, or ``None`` when the caller may open a new one."""
        deadline = time.monotonic() + self.config.pool_timeout
        with self._cond:
            while True:
                if self._closed:
                    raise BackendUnavailable(f"ldap {self.name} pool is shut down")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.config.pool_size:
                    self._count += 1
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BackendUnavailable(
                        f"ldap {self.name} pool: all {self.config.pool_size} connections busy "
                        f"for {self.config.pool_timeout}s")
                self._cond.wait(remaining)

    def _give_back(self, pooled: Pooled) -> None:
        with self._cond:
            if self._closed:
                _close(pooled.conn)
                self._count -= 1
            else:
                self._idle.append(pooled)
            self._cond.notify()

    def _forget(self, pooled: Pooled | None) -> None:
        if pooled is not None:
            _close(pooled.conn)
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def _drop_idle(self, endpoint: Endpoint) -> None:
        with self._cond:
            stale = [p for p in self._idle if p.endpoint is endpoint]
            self._idle = [p for p in self._idle if p.endpoint is not endpoint]
            self._count -= len(stale)
            self._cond.notify_all()
        for pooled in stale:
            _close(pooled.conn)

    def run(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` on a pooled connection.

        A pooled connection whose socket died (server restarted, idle timeout) is replaced
        once; a fresh connection that fails marks its server down and answers 503.
        """
        for attempt in range(2):
            pooled = self._borrow()
            fresh = pooled is None
            if pooled is not None and (attempt or pooled.conn.closed
                                       or self.servers.is_down(pooled.endpoint)):
                # The retry is always on a new connection; and never wait on a socket that
                # is closed or whose server failed for someone else.
                _close(pooled.conn)
                pooled, fresh = None, True
            try:
                if pooled is None:
                    pooled = self._open()
                result = operation(pooled.conn)
            except TRANSPORT_ERRORS as exc:
                if fresh and pooled is not None:
                    self.servers.mark_down(pooled.endpoint)
                    log.warning("ldap.server_failed", server=pooled.endpoint.url,
                                pool=self.name, error=describe(exc))
                self._forget(pooled)
                if fresh:
                    raise BackendUnavailable(f"ldap {self.name}: {describe(exc)}") from None
                if pooled is not None:
                    # A server restart kills every idle socket to it at once.
                    self._drop_idle(pooled.endpoint)
                continue
            except BaseException:
                # Unknown state (e.g. half-read response): never hand it to another request.
                self._forget(pooled)
                raise
            self._give_back(pooled)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> Pooled:
        """Open, secure and bind a connection on the first server that answers."""
        try:
            pooled = self._connect()
        except ServiceBindFailed as exc:
            raise BackendUnavailable(f"ldap {self.name}: {exc}") from None
        self.opened += 1
        return pooled

    def probe(self) -> None:
        """Open, secure and bind one fresh connection outside the pool, then close it.

        Raises :class:`ServiceBindFailed` when a server answers but refuses the service
        account, :class:`BackendUnavailable` when no server answers.
        """
        _close(self._connect().conn)

    def _connect(self) -> Pooled:
        errors: list[str] = []
        for endpoint in self.servers.candidates():
            conn = Connection(endpoint.server, client_strategy=SYNC, read_only=True,
                              raise_exceptions=False, auto_referrals=False, check_names=False,
                              receive_timeout=self.config.receive_timeout)
            # ldap3 also skips an address for ~6 s after a failed connect, which would make
            # a recovered server look down; ServerList alone decides the order.
            endpoint.server.reset_availability()
            try:
                conn.open(read_server_info=False)
                if self.config.start_tls and not endpoint.server.ssl \
                        and not conn.start_tls(read_server_info=False):
                    raise LDAPStartTLSError(f"StartTLS refused: {conn.last_error}")
                self._bind_service(conn, endpoint)
            except TRANSPORT_ERRORS as exc:
                _close(conn)
                self.servers.mark_down(endpoint)
                log.warning("ldap.server_failed", server=endpoint.url, pool=self.name,
                            error=describe(exc))
                errors.append(f"{endpoint.url}: {describe(exc)}")
                continue
            except ServiceBindFailed:
                _close(conn)
                raise
            self.servers.mark_up(endpoint)
            return Pooled(conn, endpoint)
        raise BackendUnavailable(f"ldap {self.name}: no server answered: " + "; ".join(errors))

    def _bind_service(self, conn: Connection, endpoint: Endpoint) -> None:
        if self.bind_dn is None or self._bind_password is None:
            return  # anonymous: LDAPv3 needs no bind before a search
        if not simple_bind(conn, self.bind_dn, self._bind_password.get_secret_value()):
            log.error("ldap.service_bind_failed", server=endpoint.url, dn=self.bind_dn,
                      result=conn.result.get("description") if conn.result else None)
            raise ServiceBindFailed(f"service account {self.bind_dn!r} cannot bind on "
                                    f"{endpoint.url}: {conn.last_error}")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for pooled in idle:
            _close(pooled.conn)


def _close(conn: Connection) -> None:
    try:
        if not conn.closed:
            conn.unbind()
    except Exception:  # noqa: S110 - closing a broken socket may fail; it is gone either way
        pass
    # After a receive error ldap3 may leave its socket open; never leak it.
    sock = getattr(conn, "socket", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
        conn.socket = None
