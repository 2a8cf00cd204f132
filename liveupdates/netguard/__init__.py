"""The outbound address guard: which hosts the service may connect to, and the HTTP plumbing that
enforces it at connect time.

Every outbound request the service makes (feeds today; WebSub hubs and push endpoints later) goes
through it: `policy` holds the pure rules (which IP addresses are refused and why), `transport`
the I/O (resolve, check, connect to the checked address) as an httpx transport.
"""

from liveupdates.netguard.policy import (
    SETTING,
    AddressPolicy,
    AddressRefused,
    parse_networks,
)

__all__ = ["SETTING", "AddressPolicy", "AddressRefused", "parse_networks"]
