"""Which Web Push endpoints a registration may name (setting push.webpush_hosts). Pure.

An entry is a host name ("fcm.googleapis.com"), a wildcard for its subdomains ("*.push.apple.com":
"web.push.apple.com" matches, "push.apple.com" does not), or a loopback address with a port
("127.0.0.1:9000"), which also allows plain http on that port, for tests. Nothing else is
allowed: a registration must not make the server send requests where it likes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [::1]:9000
        host, _, port = entry[1:].partition("]")
        port = port.lstrip(":")
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def endpoint_refusal(url: str, hosts: Iterable[str]) -> str | None:
    """Why `url` may not be a Web Push endpoint, or None when it may."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    for entry in hosts:
        e_host, e_port = _split(entry)
        if e_port is not None:
            # host:port entries are for loopback test servers; they allow http there too.
            if _loopback(e_host) and host == e_host and port == e_port:
                return None
            continue
        if parts.scheme != "https" or (port is not None and port != 443):
            continue
        if e_host.startswith("*."):
            if host.endswith(e_host[1:]) and host != e_host[2:]:
                return None
        elif host == e_host:
            return None
    if parts.scheme != "https":
        return "must be an https URL"
    return f"host {host} is not an allowed push service (setting push.webpush_hosts)"


def loopback_networks(hosts: Iterable[str]) -> tuple[str, ...]:
    """The loopback addresses push.webpush_hosts names (host:port entries), as CIDR networks for
    the address guard, which refuses loopback otherwise."""
    out: list[str] = []
    for entry in hosts:
        host, port = _split(entry)
        if port is not None and _loopback(host):
            out.append(str(ipaddress.ip_network(host.strip("[]"))))
    return tuple(dict.fromkeys(out))
