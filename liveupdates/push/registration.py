"""Checking what an app sends to POST /v1/devices and PUT .../subscriptions. Pure.

Every refusal is a FieldError naming the field, so the 400 tells the app exactly what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from liveupdates.models import NOTIFY_VALUES, PLATFORMS, Device, Notify, Platform
from liveupdates.netguard.hosts import endpoint_refusal
from liveupdates.settings import Settings
from liveupdates.validate import plausible_id, valid_text

MAX_ENDPOINT_LENGTH = 2048
MAX_TOKEN_LENGTH = 4096
_HEX = re.compile(r"[0-9a-fA-F]{32,200}")  # as providers/apns.py device_token_ok
_FCM_TOKEN = re.compile(r"[\x21-\x7e]+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+=*")


class FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def b64url_decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _string(data: dict[str, Any], key: str, field: str, max_length: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise FieldError(field, "is required (a string)")
    if len(value) > max_length:
        raise FieldError(field, f"is longer than {max_length} characters")
    if not valid_text(value):
        # JSON allows lone surrogates; the store cannot encode them.
        raise FieldError(field, "must not contain lone surrogates")
    return value


def configured(settings: Settings) -> tuple[Platform, ...]:
    """The platforms whose provider is configured (Web Push needs no account: always)."""
    on: list[Platform] = ["webpush"]
    if settings.apns_configured:
        on.append("apns")
    if settings.fcm_configured:
        on.append("fcm")
    return tuple(on)


def parse_device(body: Any, settings: Settings, new_id: str) -> Device:
    """The device a registration describes (with `new_id`, used if the address is new)."""
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object")
    platform = body.get("platform")
    if platform not in PLATFORMS:
        raise FieldError("platform", 'must be "webpush", "apns" or "fcm"')
    if platform not in configured(settings):
        raise FieldError("platform", f"{platform} is not configured on this server")
    if platform == "webpush":
        return _webpush(body.get("subscription"), settings, new_id)
    if platform == "apns":
        token = _string(body, "token", "token", 200)
        if not _HEX.fullmatch(token) or len(token) % 2:
            raise FieldError("token", "must be the device token in hex")
        environment = body.get("environment", "production")
        if environment not in ("production", "sandbox"):
            raise FieldError("environment", 'must be "production" or "sandbox"')
        return Device(new_id, "apns", token.lower(), {}, environment)
    token = _string(body, "token", "token", MAX_TOKEN_LENGTH)
    if not _FCM_TOKEN.fullmatch(token):
        raise FieldError("token", "must be an FCM registration token")
    return Device(new_id, "fcm", token)


def _webpush(sub: Any, settings: Settings, new_id: str) -> Device:
    if not isinstance(sub, dict):
        raise FieldError("subscription", "is required (PushSubscription.toJSON())")
    endpoint = _string(sub, "endpoint", "subscription.endpoint", MAX_ENDPOINT_LENGTH)
    refusal = endpoint_refusal(endpoint, settings.push_webpush_hosts)
    if refusal:
        raise FieldError("subscription.endpoint", refusal)
    keys = sub.get("keys")
    if not isinstance(keys, dict):
        raise FieldError("subscription.keys", "is required (p256dh and auth)")
    p256dh = _string(keys, "p256dh", "subscription.keys.p256dh", 200)
    auth = _string(keys, "auth", "subscription.keys.auth", 100)
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError("compressed")
    except (ValueError, binascii.Error):
        raise FieldError(
            "subscription.keys.p256dh", "must be an uncompressed P-256 point in base64url"
        ) from None
    try:
        secret = b64url_decode(auth)
    except (ValueError, binascii.Error):
        secret = b""
    if len(secret) != 16:
        raise FieldError("subscription.keys.auth", "must be 16 bytes in base64url")
    return Device(new_id, "webpush", endpoint, {"p256dh": p256dh, "auth": auth})


def parse_channel(channel: str) -> tuple[str, str]:
    """("story" | "feed", id) of a channel name; FieldError when it is neither."""
    kind, _, ident = channel.partition(":")
    if kind not in ("story", "feed") or not plausible_id(ident):
        raise FieldError("channel", 'must be "story:<id>" or "feed:<id>"')
    return kind, ident


def parse_notify(body: Any) -> Notify:
    if body is None:
        return "major"
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object")
    notify = body.get("notify", "major")
    if notify not in NOTIFY_VALUES:
        raise FieldError("notify", 'must be "major" or "all"')
    result: Notify = notify
    return result
