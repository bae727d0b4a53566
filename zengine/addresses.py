"""The real client address: the TCP peer, or what trusted reverse proxies say it is.

``Forwarded`` (RFC 7239) and ``X-Forwarded-For`` are honoured only when the peer is one of
``[server] trusted_proxies``. The chain is read right to left (nearest hop first), skipping
trusted proxies; the first address that is not a trusted proxy is the client. A hop that is
not an IP address (``unknown``, an obfuscated ``_name``, garbage) stops the walk: the last
trusted hop is then the best address known, and a client cannot forge its way past a proxy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Protocol


class HeaderLines(Protocol):
    """Request headers that keep repeated lines apart (Starlette's ``Headers``)."""

    def getlist(self, key: str) -> list[str]: ...


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# Every request parses its peer's address (and the guard's lists compare it): the same few
# addresses over and over. Addresses are immutable; the bound keeps a flood of new ones (a
# forged header per request) from growing it.
@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """An IP address from a header hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        # IPv4 with a port; a bare IPv6 address has several colons.
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # ``::ffff:1.2.3.4`` is the IPv4 client a dual-stack socket reports.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` of every element of ``Forwarded`` header lines, in order (RFC 7239 §4).

    A hop without ``for=`` is kept as ``""`` so that it stops the walk.
    """
    hops: list[str] = []
    for value in values:
        for element in _split(value, ","):
            found = ""
            for pair in _split(element, ";"):
                name, sep, raw = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    found = raw.strip()
            hops.append(found)
    return hops


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes (quoted-string may hold ``,`` and ``;``)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


@functools.lru_cache(maxsize=4096)
def _peer(peer: str) -> tuple[Address | None, str]:
    """The socket peer parsed and written back, once per address: every request from a phone
    (or a proxy) has the same peer string, and parsing and formatting an address cost about
    1.5% of a returning login's CPU. Bounded, so a flood from many addresses only churns it."""
    address = parse_address(peer)
    return address, str(address) if address is not None else peer


class ClientAddresses:
    """Built once at startup from ``[server] trusted_proxies``."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in trusted)

    def is_trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.trusted)

    def resolve(self, peer: str, headers: HeaderLines) -> str:
        """The client address for a request from ``peer`` with these headers."""
        peer_address, peer_text = _peer(peer)
        if not self.trusted or not self.is_trusted(peer_address):
            return peer_text
        hops = self._hops(headers)
        best: Address | None = peer_address
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break
            best = address
            if not self.is_trusted(address):
                break
        return str(best)

    @staticmethod
    def _hops(headers: HeaderLines) -> list[str]:
        forwarded = headers.getlist("forwarded")
        if forwarded:
            # RFC 7239 wins over the de-facto header when a proxy sends both.
            return forwarded_for(forwarded)
        return [hop for line in headers.getlist("x-forwarded-for") for hop in line.split(",")
                if hop.strip()]
