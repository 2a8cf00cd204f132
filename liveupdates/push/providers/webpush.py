"""Web Push (RFC 8030) with encrypted payloads (RFC 8291, aes128gcm) and VAPID (RFC 8292).

The endpoint is a URL a browser handed us, so it is from outside: it must be https on a host of the
allow-list (`push.webpush_hosts`), and every connection passes the address guard.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Sequence

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from liveupdates.netguard.hosts import endpoint_refusal, split_entry
from liveupdates.netguard.policy import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import GuardedTransport
from liveupdates.push.model import Device, Notification, Platform, SendResult
from liveupdates.push.providers.answers import is_retryable, retry, short
from liveupdates.push.providers.vapid import VapidKey, VapidSigner
from liveupdates.push.registration import subscription_keys
from liveupdates.settings import Settings

# The public push services (setting push.webpush_hosts, env LIVEUPDATES_PUSH_WEBPUSH_HOSTS).
DEFAULT_HOSTS: tuple[str, ...] = Settings.push_webpush_hosts

# RFC 8291: a push service must accept 4096 bytes of encrypted body. One aes128gcm record holds
# a 86-byte header (salt, record size, sender key), the plaintext, a 1-byte delimiter, a 16-byte tag.
MAX_BODY = 4096
MAX_PLAINTEXT = MAX_BODY - 86 - 1 - 16
RECORD_SIZE = 4096
TOPIC_CHARS = 32


# -- which endpoints may be contacted ------------------------------------------------------------


def parse_webpush_hosts(value: str | Iterable[str]) -> tuple[str, ...]:
    """The allow-list from its setting (comma-separated text or a list); ValueError naming the
    first bad entry."""
    items = value.split(",") if isinstance(value, str) else list(value)
    entries = tuple(item.strip().lower() for item in items if item.strip())
    for entry in entries:
        split_entry(entry)
    return entries


def webpush_host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """Whether the service may send to the Web Push endpoint `url`: the same rules the
    registration checks (liveupdates/netguard/hosts.py), checked again at send time."""
    return endpoint_refusal(url, hosts) is None


# -- what is sent ---------------------------------------------------------------------------------


def topic(collapse_key: str) -> str:
    """The Topic header for a collapse key: RFC 8030 allows at most 32 characters of the base64url
    alphabet, so it is the key's SHA-256, base64url, cut to 32 characters (192 bits)."""
    digest = hashlib.sha256(collapse_key.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:TOPIC_CHARS]


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
