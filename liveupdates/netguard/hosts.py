"""Which Web Push endpoints a registration may name (setting push.webpush_hosts). Pure; the settings check entries with `split_entry`.

An entry is a host name ("fcm.googleapis.com": https on port 443), a wildcard for its subdomains
("*.push.apple.com": "web.push.apple.com" matches, "push.apple.com" does not), or `host:port`
(https on that port; when the host is a loopback address, plain http there too, for tests). The
same rules as the Web Push provider's own check at send time (providers/webpush.py). Nothing else
is allowed: a registration must not make the server send requests where it likes.
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


def split_entry(entry: str) -> tuple[str, int | None]:
    """("host", port or None) of an allow-list entry; ValueError when it is not one."""
    text = entry.strip().lower()
    if not text or "/" in text or "@" in text:
        raise ValueError(f"{entry!r} is not a host, *.domain or host:port")
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{entry!r} has a bad port") from None
    host = parts.hostname or ""
    name = host[2:] if host.startswith("*.") else host
    if not name or "*" in name:
        raise ValueError(f"{entry!r} is not a host, *.domain or host:port")
    return host, port


def _same_host(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ipaddress.ip_address(entry.strip("[]"))
    except ValueError:
        return host == entry


def endpoint_refusal(url: str, hosts: Iterable[str]) -> str | None:
    """Why `url` may not be a Web Push endpoint, or None when it may."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    effective = port if port is not None else (443 if parts.scheme == "https" else 80)
    for entry in hosts:
        try:
            e_host, e_port = split_entry(entry)
        except ValueError:
            continue
        if e_port is None:
            if parts.scheme != "https" or effective != 443:
                continue
        elif e_port != effective or (parts.scheme == "http" and not _loopback(e_host)):
            continue
        if e_host.startswith("*."):
            if host.endswith(e_host[1:]) and len(host) > len(e_host) - 1:
                return None
        elif _same_host(host, e_host):
            return None
    if parts.scheme != "https":
        return "must be an https URL"
    return f"host {host} is not an allowed push service (setting push.webpush_hosts)"


def loopback_networks(hosts: Iterable[str]) -> tuple[str, ...]:
    """The loopback addresses push.webpush_hosts names (host:port entries), as CIDR networks for
    the address guard, which refuses loopback otherwise."""
    out: list[str] = []
    for entry in hosts:
        try:
            host, port = split_entry(entry)
        except ValueError:
            continue
        if port is not None and _loopback(host):
            out.append(str(ipaddress.ip_network(host.strip("[]"))))
    return tuple(dict.fromkeys(out))
