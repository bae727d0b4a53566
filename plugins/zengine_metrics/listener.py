"""``/metrics`` on a listener of its own (``[plugins.metrics] listen``), off the main one.

The standard library's threading HTTP server in a daemon thread of each worker. Every worker
binds the same address with ``SO_REUSEPORT``: the kernel hands each scrape to one of them,
and each answers with every worker's counts (multiprocess mode), so a scrape never depends on
one worker being alive. It also lets a reloaded app bind while the old one still drains.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from zengine.errors import ConfigError
from zengine_metrics.settings import MetricsSettings, parse_listen

log = structlog.get_logger("zengine.metrics")
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def allowed(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    allow_reuse_port = True
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class Listener:
    def __init__(self, config: MetricsSettings, exposition: Callable[[], bytes]) -> None:
        host, port = parse_listen(config.listen or "")
        networks = config.networks()
        path = config.path

        class Handler(BaseHTTPRequestHandler):
            # No keep-alive: a scrape is one request every few seconds.
            protocol_version = "HTTP/1.0"
            server_version = "zengine-metrics"
            sys_version = ""

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != path:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                elif not allowed(self.client_address[0], networks):
                    self._send(403, b"forbidden: not in [plugins.metrics] allow\n",
                               "text/plain; charset=utf-8")
                else:
                    self._send(200, exposition(), CONTENT_TYPE_LATEST)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # The standard library writes each request line to stderr; the main access
                # log says enough about scrapes.
                pass

        server_class = _Server6 if ":" in host else _Server
        try:
            self.server = server_class((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"[plugins.metrics] listen = {config.listen!r}: cannot listen "
                              f"there: {exc.strerror}") from None
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="zengine-metrics", daemon=True)
        self.thread.start()
        log.info("metrics.listening", listen=config.listen, path=path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
