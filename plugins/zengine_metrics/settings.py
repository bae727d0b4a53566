"""``[plugins.metrics]``: whether ``/metrics`` is served, where, and to whom."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts; a port from 1 to 65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:9464 or [::1]:9464)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, [::1]:9464")
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"{text!r}: the port must be from 1 to 65535")
    return host, number


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Off unless an operator turns it on: metrics tell who is busy and failing.
    enabled: bool = False
    #: Where the Prometheus text is served (on the main listener or on ``listen``).
    path: str = Field("/metrics", pattern=r"^(?:/[A-Za-z0-9._~-]+)+$")
    #: ``host:port`` of a listener of its own (every worker binds it with SO_REUSEPORT);
    #: ``path`` is then *not* served on the main listener. Unset: served on the main one.
    listen: str | None = None
    #: Who may scrape (CIDRs), on either listener; everyone else gets 403. On the main
    #: listener the address is the real client's, ``[server] trusted_proxies`` applied.
    allow: tuple[str, ...] = Field(("127.0.0.1/32", "::1/128"), min_length=1)
    #: Directory for prometheus-client's per-process files when ``[server] workers`` > 1 (or
    #: ``--workers``); each ``zengine serve`` uses a subdirectory of its own and removes those
    #: of servers no longer running. Unset: ``zengine-metrics-<uid>`` in the temp directory.
    multiprocess_dir: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
        return value

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in self.allow)
