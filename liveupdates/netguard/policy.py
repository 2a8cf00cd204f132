"""Which IP addresses the service may connect to. Pure: no resolving, no sockets.

By default only public addresses: loopback, private, link-local, multicast, reserved, unspecified
and other special-purpose ranges are refused, also when wrapped in an IPv6 form that reaches them
(IPv4-mapped, IPv4-compatible, 6to4, NAT64). Ops allow intranet ranges explicitly with
`fetch.allow_networks`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

SETTING = "fetch.allow_networks"

# Special-purpose ranges Python's flags miss or name vaguely (3.11 calls all but the first global).
_ALSO_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (IPv4Network("100.64.0.0/10"), "private"),  # carrier-grade NAT (shared address space)
    (IPv4Network("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (IPv6Network("fec0::/10"), "private"),  # deprecated site-local
    (IPv6Network("64:ff9b:1::/48"), "private"),  # local-use NAT64 (RFC 8215)
)
_NAT64 = IPv6Network("64:ff9b::/96")


class AddressRefused(Exception):
    """The guard refused to connect: the message says which address, why, and which setting
    allows it ("address 10.0.0.1 is private; see fetch.allow_networks")."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; see {SETTING}")
        self.reason = reason


def parse_networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """CIDR strings ("10.20.0.0/16", a bare address is a /32 or /128) to networks.

    Raises ValueError naming the first bad value."""
    networks: list[IPNetwork] = []
    for value in values:
        if isinstance(value, IPv4Network | IPv6Network):
            networks.append(value)
            continue
        text = str(value).strip()
        try:
            # strict=False: "10.1.2.3/16" means the /16 it sits in, as ops would expect.
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not a CIDR network (example: 10.20.0.0/16)") from None
    return tuple(networks)


def kind(address: IPAddress) -> str | None:
    """Why `address` is not public ("loopback", "private", ...), or None when it is."""
    for network, name in _ALSO_REFUSED:
        if address.version == network.version and address in network:
            return name
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not public"
    return None


def embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 form leads to, with the form's name, or None."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if 1 < int(address) < 2**32:
        return "IPv4-compatible", IPv4Address(int(address))
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses, plus the networks in `allow`."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str | IPNetwork]) -> AddressPolicy:
        return cls(parse_networks(networks))

    def refusal(self, address: IPAddress | str) -> str | None:
        """None when the service may connect to `address`; else why not, as
        "address 10.0.0.1 is private"."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, IPv6Address) and ip.scope_id:
            ip = IPv6Address(str(ip).split("%", 1)[0])  # fe80::1%eth0: the zone is not the host
        if self._allowed(ip):
            return None
        if isinstance(ip, IPv6Address):
            wrapped = embedded_ipv4(ip)
            if wrapped is not None:
                form, inner = wrapped
                # The packets end at the IPv4 address: judge that one, and name both. Only the
                # mapped form is the same host, so only it shares the IPv4 address's allowance.
                allowed = form == "IPv4-mapped" and self._allowed(inner)
                reason = None if allowed else kind(inner)
                if reason is None and form == "IPv4-compatible":
                    reason = "reserved"  # deprecated, routed nowhere useful
                if reason is None:
                    return None
                return f"address {_text(ip)} is {reason} ({form} form of {inner})"
        reason = kind(ip)
        return None if reason is None else f"address {_text(ip)} is {reason}"

    def check(self, address: IPAddress | str) -> None:
        """Raise AddressRefused unless the service may connect to `address`."""
        reason = self.refusal(address)
        if reason is not None:
            raise AddressRefused(reason)

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)


def _text(ip: IPAddress) -> str:
    # Python < 3.13 writes ::ffff:7f00:1; the dotted form is the one people recognise.
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)
