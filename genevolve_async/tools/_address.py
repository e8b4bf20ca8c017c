"""Which hosts an image download may reach: public addresses only, by default.

An agent inside a web service downloads whatever URL a search result names.
Without a guard it is a proxy into the internal network (cloud metadata at
169.254.169.254, admin panels on 10.x, the service's own loopback). The
guard checks the addresses the connection will actually use: IP literals
before each request, and every address a name resolves to in the runtime's
connector (:mod:`.._session`), which then connects to exactly those, so a name
cannot resolve to a public address when checked and a private one when
connecting (DNS rebinding). A pooled connection's peer is checked again, and
every redirect hop is a new request through the same checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AddressPolicy", "RefusedAddressError", "is_public_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64 embeds an IPv4 address; judge the embedded one.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddressError(OSError):
    """A download target resolved to an address the policy refuses."""


def _unwrap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address."""
    ip = _unwrap(ip)
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


@dataclass(kw_only=True, slots=True, frozen=True)
class AddressPolicy:
    """Public addresses, plus explicitly allowed networks (or everything)."""

    allow_private: bool = False
    """Allow every address (tests, self-hosted gateways on a private network)."""
    allowed_networks: tuple[IPNetwork, ...] = ()
    """Networks allowed even though they are not public."""

    @classmethod
    def build(cls, *, allow_private: bool, networks: Sequence[str]) -> AddressPolicy:
        """A policy from settings; ``networks`` are CIDR strings.

        Raises:
            ValueError: a network string does not parse.
        """
        return cls(
            allow_private=allow_private,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in networks),
        )

    def allows(self, ip: IPAddress) -> bool:
        """Whether a connection to ``ip`` is allowed."""
        if self.allow_private or any(ip in net for net in self.allowed_networks):
            return True
        return is_public_address(ip)

    def check_host(self, host: str) -> None:
        """Refuse an IP-literal host the policy does not allow (names pass through).

        Raises:
            RefusedAddressError: ``host`` is a refused IP literal.
        """
        if self.allow_private:
            return  # every address is allowed: nothing to parse
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not self.allows(ip):
            raise RefusedAddressError(f"address {ip} is not public")
