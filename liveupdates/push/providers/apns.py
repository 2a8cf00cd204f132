"""Apple Push Notification service: HTTP/2 with token authentication.

The provider token is an ES256 JWT (`kid` = key id, `iss` = team id, `iat`) signed with the .p8
key from Apple's developer site; Apple refuses one older than an hour and one renewed more often
than every 20 minutes, so it is renewed after TOKEN_LIFETIME (50 minutes). The base URLs are ops
settings (production and sandbox) and only the device token, a path segment, comes from outside;
every connection still passes the address guard, which allows public addresses and the networks
ops allow (`allow_networks`).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from liveupdates.netguard.policy import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import guarded_client
from liveupdates.push.model import Device, Notification, Platform, SendResult
from liveupdates.push.providers.answers import is_retryable, retry, short, unanswered
from liveupdates.settings import Settings

PRODUCTION_URL: str = Settings.push_apns_url  # LIVEUPDATES_PUSH_APNS_URL's default
SANDBOX_URL: str = Settings.push_apns_sandbox_url  # LIVEUPDATES_PUSH_APNS_SANDBOX_URL's default
TOKEN_LIFETIME = 50 * 60.0
MAX_PAYLOAD = 4096
MAX_COLLAPSE_ID = 64
GONE_REASONS = frozenset({"BadDeviceToken", "Unregistered"})
# Apple's answers to a provider token it will not take: renew it, and try again.
TOKEN_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})


def load_p8(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """The .p8 signing key; ValueError saying what is wrong (not the key)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the APNs key file {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"the APNs key file {path} is not a .p8 (PEM PKCS#8) key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"the APNs key file {path} is not an EC P-256 key")
    return key


def device_token_ok(token: str) -> bool:
    """An APNs device token: hex digits (32 bytes today; Apple says not to assume the length)."""
    return 0 < len(token) <= 200 and all(c in "0123456789abcdefABCDEF" for c in token)


def collapse_id(key: str) -> str:
    """apns-collapse-id: the collapse key, or its SHA-256 hex (64 bytes) when it is longer."""
    if len(key.encode("utf-8")) <= MAX_COLLAPSE_ID:
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def payload(notification: Notification) -> bytes:
    """The JSON body: `aps.alert` for the system, the notification's data beside it for the app."""
    document: dict[str, Any] = {
        "aps": {
            "alert": {"title": notification.title, "body": notification.body},
            "thread-id": notification.story_id,
        }
    }
    document.update(notification.payload())
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class ApnsProvider:
    """Sends alert notifications to iOS devices through APNs."""

    platform: Platform = "apns"

    def __init__(
        self,
        *,
        key_file: str | Path,
        key_id: str,
        team_id: str,
        topic: str,
        url: str = PRODUCTION_URL,
        sandbox_url: str = SANDBOX_URL,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        allow_networks: Iterable[str] = (),
        token_lifetime: float = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("key_id", key_id), ("team_id", team_id), ("topic", topic)):
            if not value:
                raise ValueError(f"the APNs {name} is empty (LIVEUPDATES_PUSH_APNS_{name.upper()})")
        self._key = load_p8(key_file)
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.urls = {"production": url.rstrip("/"), "sandbox": sandbox_url.rstrip("/")}
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (jwt, issued at)
        self._client = guarded_client(
            AddressPolicy.allowing(allow_networks), verify=verify, http2=True, timeout=timeout
        )

    def provider_token(self) -> str:
        """The cached provider JWT, renewed once it is TOKEN_LIFETIME old."""
        now = self._clock()
        if self._token is None or now - self._token[1] >= self.token_lifetime:
            issued = int(now)
            token = jwt.encode(
                {"iss": self.team_id, "iat": issued},
                self._key,
                algorithm="ES256",
                headers={"kid": self.key_id},
            )
            self._token = (token, float(issued))
        return self._token[0]

    async def send(self, device: Device, notification: Notification) -> SendResult:
        if not device_token_ok(device.address):
            # what APNs would answer BadDeviceToken to; not sent as a path of any shape
            return SendResult("gone", detail="BadDeviceToken: not a hex device token")
        base = self.urls.get(device.environment or "production")
        if base is None:
            return SendResult("failed", detail=f"unknown APNs environment {device.environment!r}")
        body = payload(notification)
        if len(body) > MAX_PAYLOAD:
            return SendResult("too_large", detail=f"payload {len(body)} bytes > {MAX_PAYLOAD}")
        expiration = int(self._clock()) + max(0, int(notification.ttl))
        headers = {
            "authorization": f"bearer {self.provider_token()}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-collapse-id": collapse_id(notification.collapse_key),
            "apns-priority": "10" if notification.urgency == "high" else "5",
            "apns-expiration": str(expiration),
            "content-type": "application/json",
        }
        url = f"{base}/3/device/{device.address}"
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except (AddressRefused, httpx.HTTPError, OSError) as exc:  # OSError: TimeoutError too
            return unanswered(exc)
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if status == 200:
            return SendResult("sent")
        reason = _reason(response)
        if status == 410 or reason in GONE_REASONS:
            return SendResult("gone", detail=f"{status} {reason}")
        if status == 413 or reason == "PayloadTooLarge":
            return SendResult("too_large", detail=f"{status} {reason}")
        if status == 403 and reason in TOKEN_REASONS:
            self._token = None  # the next send signs a new one
            return SendResult("retry", retry_after=0.0, detail=f"{status} {reason}")
        if is_retryable(status):
            return retry(status, response.headers, reason)
        return SendResult("failed", detail=f"{status} {reason}".strip())

    async def aclose(self) -> None:
        await self._client.aclose()


def _reason(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return short(response.text)
    reason = document.get("reason") if isinstance(document, dict) else None
    return short(str(reason)) if reason else ""
