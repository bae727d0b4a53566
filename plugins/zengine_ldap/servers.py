"""The directory servers: ldap3 ``Server`` objects, TLS, and failover order.

Why not ldap3's ``ServerPool``: with ``active=1`` it sleeps ``POOLING_LOOP_TIMEOUT`` (10 s,
settable only process-wide) after a cycle in which every server failed, so a full outage
answers after 10 s instead of within the configured timeouts; it probes each server with an
extra TCP connect before every open; its ``pool_states`` keeps every ``Connection`` ever
created; and it only notices refused connects, never a server that accepts and then hangs.
:class:`ServerList` keeps the same idea (try in order, skip a failed server for a while)
and reports failures from any stage.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ldap3 import NONE, Server, Tls

from zengine.errors import ConfigError
from zengine.settings import Settings
from zengine_ldap.settings import LdapSettings


class ContextTls(Tls):
    """ldap3 ``Tls`` that wraps sockets with a standard-library ``SSLContext``.

    ldap3's own wrapping turns ``check_hostname`` off and matches names itself with the
    deprecated ``ssl.match_hostname`` (a DeprecationWarning on 3.11, gone in 3.12). Here the
    ssl module checks chain and host name (IP addresses included) during the handshake.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(validate=context.verify_mode)
        self.context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        hostname = connection.server.host if self.context.check_hostname else None
        connection.socket = self.context.wrap_socket(
            connection.socket, server_side=False, do_handshake_on_connect=do_handshake,
            server_hostname=hostname)


def tls_context(config: LdapSettings, settings: Settings) -> ssl.SSLContext:
    cafile = str(settings.resolve_path(config.ca_file)) if config.ca_file else None
    try:
        # TLS 1.2+, CERT_REQUIRED and host name checking, as the standard library defaults.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[plugins.ldap] ca_file {cafile}: cannot load ({exc})") from None
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Endpoint:
    url: str
    server: Server
    down_until: float = 0.0


class ServerList:
    """The configured servers, in the order connections should try them."""

    def __init__(self, config: LdapSettings, settings: Settings) -> None:
        self.retry_after = config.retry_after
        self._lock = threading.Lock()
        tls = ContextTls(tls_context(config, settings))
        self.endpoints: list[Endpoint] = []
        for url in config.servers:
            parts = urlsplit(url)
            secure = parts.scheme == "ldaps"
            port = parts.port or (636 if secure else 389)
            # get_info=NONE: no schema or root DSE read on each new connection.
            server = Server(parts.hostname or "", port=port, use_ssl=secure, tls=tls,
                            get_info=NONE, connect_timeout=config.connect_timeout)
            self.endpoints.append(Endpoint(url=f"{parts.scheme}://{parts.netloc}",
                                           server=server))

    def candidates(self) -> list[Endpoint]:
        """Healthy servers in configured order, then failed ones, longest-failed first.

        Failed servers are still tried last, so a recovered directory is used at once even
        when every server had failed, and an outage costs at most one attempt per server.
        """
        now = time.monotonic()
        with self._lock:
            healthy = [e for e in self.endpoints if e.down_until <= now]
            failed = sorted((e for e in self.endpoints if e.down_until > now),
                            key=lambda e: e.down_until)
        return healthy + failed

    def mark_down(self, endpoint: Endpoint) -> None:
        with self._lock:
            endpoint.down_until = time.monotonic() + self.retry_after

    def mark_up(self, endpoint: Endpoint) -> None:
        if endpoint.down_until:
            with self._lock:
                endpoint.down_until = 0.0

    def is_down(self, endpoint: Endpoint) -> bool:
        return endpoint.down_until > time.monotonic()
