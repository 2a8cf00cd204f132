"""The guard for aiohttp: the same `AddressPolicy` at connect time, for the Web Push sender.

Two hooks, because aiohttp resolves names itself and hands IP-literal hosts past its resolver:
- `GuardedResolver` resolves a name and keeps only the addresses the policy allows
  (AddressRefused, naming the first, when none is), so a host with one refused and one allowed
  address still connects to the allowed one;
- `guarded_socket_factory` checks the address of every socket aiohttp opens, just before the
  connect, so an IP literal, a cached resolution or any later connection is checked as well.

No proxy (aiohttp ignores the environment's unless `trust_env`), and TLS still verifies the URL's
host name: only the TCP connect uses the checked address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from liveupdates.netguard.policy import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import checked_addresses


class GuardedResolver(AbstractResolver):
    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await checked_addresses(host, port, self.policy)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def guarded_socket_factory(policy: AddressPolicy) -> Callable[[Any], socket.socket]:
    """An aiohttp `socket_factory` that refuses (AddressRefused) to open a socket to an address
    the policy refuses."""

    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _name, sockaddr = addr_info
        reason = policy.refusal(ipaddress.ip_address(sockaddr[0]))
        if reason is not None:
            raise AddressRefused(reason)
        return socket.socket(family, type_, proto)

    return factory


def guarded_connector(policy: AddressPolicy, *, limit: int) -> aiohttp.TCPConnector:
    """A connector whose every connection passes the guard (call it in the running loop)."""
    return aiohttp.TCPConnector(
        limit=limit,
        resolver=GuardedResolver(policy),
        socket_factory=guarded_socket_factory(policy),
    )
