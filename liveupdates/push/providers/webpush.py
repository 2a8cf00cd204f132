"""Web Push (RFC 8030) with encrypted payloads (RFC 8291, aes128gcm) and VAPID (RFC 8292).

The endpoint is a URL a browser handed us, so it is from outside: it must be https on a host of the
allow-list (`push.webpush_hosts`), and every connection passes the address guard.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import zlib
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from liveupdates.netguard.policy import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import GuardedTransport
from liveupdates.push.model import Device, Notification, Platform, SendResult
from liveupdates.push.providers.answers import is_retryable, retry, short
from liveupdates.push.providers.vapid import VapidKey, VapidSigner, b64url_decode

# The public push services (setting push.webpush_hosts, env LIVEUPDATES_PUSH_WEBPUSH_HOSTS).
DEFAULT_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
)

# RFC 8291: a push service must accept 4096 bytes of encrypted body. One aes128gcm record holds
# a 86-byte header (salt, record size, sender key), the plaintext, a 1-byte delimiter, a 16-byte tag.
MAX_BODY = 4096
MAX_PLAINTEXT = MAX_BODY - 86 - 1 - 16
RECORD_SIZE = 4096
TOPIC_CHARS = 32


# -- which endpoints may be contacted ------------------------------------------------------------


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    """("host", port or None) of an allow-list entry; ValueError when it is not one."""
    entry = entry.strip().lower()
    if not entry or "/" in entry or "@" in entry:
        raise ValueError(f"{entry!r} is not a host, *.domain or loopback-address:port")
    parts = urlsplit(f"//{entry}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{entry!r} has a bad port") from None
    host = parts.hostname or ""
    name = host[2:] if host.startswith("*.") else host
    if not name or "*" in name:
        raise ValueError(f"{entry!r} is not a host, *.domain or loopback-address:port")
    return host, port


def parse_webpush_hosts(value: str | Iterable[str]) -> tuple[str, ...]:
    """The allow-list from its setting (comma-separated text or a list); ValueError naming the
    first bad entry."""
    items = value.split(",") if isinstance(value, str) else list(value)
    entries = tuple(item.strip().lower() for item in items if item.strip())
    for entry in entries:
        _split_entry(entry)
    return entries


def webpush_host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """Whether the service may send to the Web Push endpoint `url`.

    `hosts` entries: an exact host name (https on port 443), `*.suffix` (any host below suffix,
    https on 443), or `host:port` (https on that port; when host is a loopback address also plain
    http, for tests). Nothing else: no user info, no other scheme."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme not in ("https", "http"):
        return False
    effective = port if port is not None else (443 if parts.scheme == "https" else 80)
    for entry in hosts:
        try:
            entry_host, entry_port = _split_entry(entry)
        except ValueError:
            continue
        if entry_port is None:
            if parts.scheme != "https" or effective != 443:
                continue
        elif entry_port != effective or (parts.scheme == "http" and not _loopback(entry_host)):
            continue
        if entry_host.startswith("*."):
            if host.endswith(entry_host[1:]) and len(host) > len(entry_host) - 1:
                return True
        elif _same_host(host, entry_host):
            return True
    return False


def _same_host(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ipaddress.ip_address(entry.strip("[]"))
    except ValueError:
        return host == entry


# -- what is sent ---------------------------------------------------------------------------------


def topic(collapse_key: str) -> str:
    """The Topic header for a collapse key: RFC 8030 allows at most 32 characters of the base64url
    alphabet, so it is the key's SHA-256, base64url, cut to 32 characters (192 bits)."""
    digest = hashlib.sha256(collapse_key.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:TOPIC_CHARS]


def subscription_keys(keys: dict[str, str]) -> tuple[bytes, bytes]:
    """(p256dh point, auth secret) from a subscription's keys; ValueError naming the bad one."""
    try:
        p256dh = b64url_decode(keys.get("p256dh", ""))
        if len(p256dh) != 65 or p256dh[0] != 4:  # browsers give the uncompressed point
            raise ValueError("not an uncompressed point")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise ValueError("keys.p256dh is not a P-256 public key (base64url)") from None
    try:
        auth = b64url_decode(keys.get("auth", ""))
    except ValueError:
        auth = b""
    if len(auth) != 16:
        raise ValueError("keys.auth is not a 16-byte secret (base64url)")
    return p256dh, auth


def encrypt(plaintext: bytes, p256dh: bytes, auth: bytes) -> bytes:
    """RFC 8291 aes128gcm body for the subscription: a fresh sender key and salt each time."""
    return http_ece.encrypt(
        plaintext,
        salt=os.urandom(16),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=p256dh,
        auth_secret=auth,
        rs=RECORD_SIZE,
        version="aes128gcm",
    )


def plaintext(notification: Notification) -> bytes:
    return json.dumps(notification.payload(), ensure_ascii=False, separators=(",", ":")).encode()


# -- the provider ---------------------------------------------------------------------------------


POOL_SIZE = 8  # connections per pool (see WebPushProvider.__init__)


class WebPushProvider:
    """Sends encrypted notifications to browser push services."""

    platform: Platform = "webpush"

    def __init__(
        self,
        key: VapidKey,
        subject: str,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        allow_networks: Iterable[str] = (),
        timeout: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        self.key = key
        self.signer = VapidSigner(key, subject)
        self.hosts = parse_webpush_hosts(hosts)
        # Keep-alive connections to the few push services: a notification burst reuses them.
        # Several small pools rather than one big one: httpcore walks every queued request
        # against every connection of its pool on each request, so one pool of 100 connections
        # costs ~100x more CPU per send than ten pools of 10 (bench/push.py).
        shards = max(1, -(-max_connections // POOL_SIZE))
        per_pool = max(1, -(-max_connections // shards))
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        policy = AddressPolicy.allowing(allow_networks)
        self._clients = [
            httpx.AsyncClient(
                transport=GuardedTransport(policy, limits=limits),
                timeout=timeout,
                follow_redirects=False,
            )
            for _ in range(shards)
        ]

    async def send(self, device: Device, notification: Notification) -> SendResult:
        endpoint = device.address
        if not webpush_host_allowed(endpoint, self.hosts):
            return SendResult("failed", detail="endpoint host is not in push.webpush_hosts")
        try:
            p256dh, auth = subscription_keys(device.keys)
        except ValueError as exc:
            return SendResult("failed", detail=str(exc))
        data = plaintext(notification)
        if len(data) > MAX_PLAINTEXT:
            return SendResult("too_large", detail=f"payload {len(data)} bytes > {MAX_PLAINTEXT}")
        body = encrypt(data, p256dh, auth)
        headers = {
            "Authorization": self.signer.authorization(endpoint),
            "TTL": str(max(0, int(notification.ttl))),
            "Urgency": notification.urgency,
            "Topic": topic(notification.collapse_key),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        try:
            client = self._clients[zlib.crc32(device.id.encode()) % len(self._clients)]
            response = await client.post(endpoint, content=body, headers=headers)
        except AddressRefused as refused:
            return SendResult("failed", detail=str(refused))
        except httpx.InvalidURL as exc:
            return SendResult("failed", detail=short(f"bad endpoint URL: {exc}"))
        except (httpx.HTTPError, OSError) as exc:
            return SendResult("retry", detail=short(f"{type(exc).__name__}: {exc}"))
        return answer(response)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def answer(response: httpx.Response) -> SendResult:
    status = response.status_code
    if 200 <= status < 300:
        return SendResult("sent")
    detail = short(response.text)
    if status in (404, 410):
        return SendResult("gone", detail=f"{status} {detail}".strip())
    if status == 413:
        return SendResult("too_large", detail=f"413 {detail}".strip())
    if is_retryable(status):
        return retry(status, response.headers, detail)
    return SendResult("failed", detail=f"{status} {detail}".strip())
