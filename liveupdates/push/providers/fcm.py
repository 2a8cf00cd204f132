"""Firebase Cloud Messaging, HTTP v1 API, for Android (and other FCM) devices.

The OAuth2 access token comes from the service account's JWT-bearer grant (RFC 7523): an RS256
assertion signed with the account's private key is posted to the `token_uri` of the credentials
file, used as is. The token is cached until shortly before it expires, and fetched once for all
sends waiting for it. Base URL and credentials are ops settings (LIVEUPDATES_PUSH_FCM_URL,
LIVEUPDATES_PUSH_FCM_CREDENTIALS_FILE); only the device token, a JSON string, comes from outside.
Every connection (the send URL's and the token_uri's) still passes the address guard: a
credentials file whose token_uri names a private address outside `allow_networks` is refused.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from liveupdates.netguard.policy import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import guarded_client
from liveupdates.push.model import Device, Notification, Platform, SendResult
from liveupdates.push.providers import answers
from liveupdates.push.providers.answers import is_retryable, retry, short
from liveupdates.settings import Settings

DEFAULT_URL: str = Settings.push_fcm_url  # LIVEUPDATES_PUSH_FCM_URL's default
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600
TOKEN_RENEW_BEFORE = 300.0  # seconds before the access token's expiry
MAX_PAYLOAD = 4096  # FCM's limit on a message's data and notification


@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str
    token_uri: str

    @classmethod
    def load(cls, path: str | Path) -> ServiceAccount:
        """The service-account JSON the Firebase console hands out; ValueError naming what is
        missing or wrong (never the key)."""
        try:
            info = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ValueError(
                f"cannot read the FCM credentials file {path}: {exc.strerror}"
            ) from None
        except ValueError:
            raise ValueError(f"the FCM credentials file {path} is not JSON") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValueError(f"the FCM credentials file {path} is not a service-account key")
        for name in ("project_id", "client_email", "private_key", "token_uri"):
            if not isinstance(info.get(name), str) or not info[name]:
                raise ValueError(f"the FCM credentials file {path} has no {name}")
        if not info["token_uri"].startswith(("https://", "http://")):
            raise ValueError(f"the FCM credentials file {path} has a token_uri that is not a URL")
        try:
            key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(f"the private_key in {path} is not a PEM key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"the private_key in {path} is not an RSA key")
        return cls(
            project_id=info["project_id"],
            client_email=info["client_email"],
            private_key=key,
            private_key_id=str(info.get("private_key_id") or ""),
            token_uri=info["token_uri"],
        )

    def assertion(self, now: float) -> str:
        """The signed JWT the token endpoint exchanges for an access token."""
        issued = int(now)
        claims = {
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        headers = {"kid": self.private_key_id} if self.private_key_id else None
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)


class TokenError(Exception):
    """The token endpoint did not give an access token; `retryable` when trying later may help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def message(device: Device, notification: Notification) -> dict[str, Any]:
    """The v1 `message` for one device: notification title/body, the payload as string data,
    and the collapse key as Android's collapse_key and notification tag."""
    data = {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in notification.payload().items()
    }
    key = notification.collapse_key
    return {
        "token": device.address,
        "notification": {"title": notification.title, "body": notification.body},
        "data": data,
        "android": {
            "collapse_key": key,
            "priority": "HIGH" if notification.urgency == "high" else "NORMAL",
            "ttl": f"{max(0, int(notification.ttl))}s",
            "notification": {"tag": key},
        },
    }


def payload_size(document: dict[str, Any]) -> int:
    """Bytes FCM counts against its 4096-byte limit (data and notification), about."""
    counted = {"data": document["data"], "notification": document["notification"]}
    return len(json.dumps(counted, ensure_ascii=False, separators=(",", ":")).encode())


class FcmProvider:
    """Sends notifications through FCM's HTTP v1 API."""

    platform: Platform = "fcm"

    def __init__(
        self,
        *,
        credentials_file: str | Path,
        url: str = DEFAULT_URL,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        allow_networks: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = ServiceAccount.load(credentials_file)
        self.send_url = f"{url.rstrip('/')}/v1/projects/{self.account.project_id}/messages:send"
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (access token, expires at)
        self._lock = asyncio.Lock()
        self._client = guarded_client(
            AddressPolicy.allowing(allow_networks), verify=verify, timeout=timeout
        )

    async def access_token(self) -> str:
        """A cached access token; fetched (once, for every waiting send) when none is fresh."""
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()
            if token is not None:
                return token
            return await self._fetch_token()

    def _fresh(self) -> str | None:
        if self._token is not None and self._token[1] - self._clock() > TOKEN_RENEW_BEFORE:
            return self._token[0]
        return None

    async def _fetch_token(self) -> str:
        now = self._clock()
        form = {"grant_type": GRANT_TYPE, "assertion": self.account.assertion(now)}
        try:
            response = await self._client.post(self.account.token_uri, data=form)
        except AddressRefused as refused:
            raise TokenError(f"token endpoint: {refused}", retryable=False) from None
        except (httpx.HTTPError, OSError) as exc:
            raise TokenError(f"token endpoint: {type(exc).__name__}", retryable=True) from exc
        if response.status_code != 200:
            status = response.status_code
            raise TokenError(
                short(f"token endpoint answered {status} {response.text}"),
                retryable=is_retryable(status),
                retry_after=answers.retry_after(response.headers),
            )
        try:
            document = response.json()
            token = str(document["access_token"])
            expires_in = float(document.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise TokenError("token endpoint gave no access_token", retryable=True) from None
        self._token = (token, now + expires_in)
        return token

    async def send(self, device: Device, notification: Notification) -> SendResult:
        document = message(device, notification)
        size = payload_size(document)
        if size > MAX_PAYLOAD:
            return SendResult("too_large", detail=f"payload {size} bytes > {MAX_PAYLOAD}")
        try:
            token = await self.access_token()
        except TokenError as exc:
            if exc.retryable:
                return SendResult("retry", retry_after=exc.retry_after, detail=str(exc))
            return SendResult("failed", detail=str(exc))
        headers = {"Authorization": f"Bearer {token}"}
        try:
            response = await self._client.post(
                self.send_url, json={"message": document}, headers=headers
            )
        except (AddressRefused, httpx.HTTPError, OSError) as exc:
            return answers.unanswered(exc)
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if status == 200:
            return SendResult("sent")
        code, text = _error(response)
        detail = f"{status} {code} {text}".strip()
        if status == 404 or code == "UNREGISTERED":
            return SendResult("gone", detail=detail)
        if status == 413 or (status == 400 and "too big" in text.lower()):
            return SendResult("too_large", detail=detail)
        if status == 401:
            self._token = None  # fetch a new one for the next send
            return SendResult("retry", retry_after=0.0, detail=detail)
        if is_retryable(status):
            return retry(status, response.headers, f"{code} {text}")
        return SendResult("failed", detail=detail)

    async def aclose(self) -> None:
        await self._client.aclose()


def _error(response: httpx.Response) -> tuple[str, str]:
    """(FCM errorCode or the status name, message) from an error answer."""
    try:
        error = response.json()["error"]
        text = short(str(error.get("message", "")))
        code = str(error.get("status", ""))
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and detail.get("errorCode"):
                code = str(detail["errorCode"])
        return code, text
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", short(response.text)
