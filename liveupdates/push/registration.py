"""Checking what an app sends to POST /v1/devices and PUT .../subscriptions. Pure.

The shape is the public API's models (api/push.py), the same ones /v1/openapi.json is generated
from: msgspec checks types, patterns and lengths. Then what a schema cannot say: a subscription's
p256dh is a point on P-256 and its auth 16 bytes, the endpoint's host is an allowed push service,
the platform's provider is configured, no string carries a lone surrogate.

Every refusal is a FieldError naming the field, so the 400 tells the app exactly what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from liveupdates.api import push as api
from liveupdates.api.models import Channel
from liveupdates.api.params import LONE_SURROGATES, convert_body, validation_field
from liveupdates.models import PLATFORMS, Device, Notify, Platform
from liveupdates.netguard.hosts import endpoint_refusal
from liveupdates.settings import Settings
from liveupdates.validate import InvalidInput, plausible_id, valid_text

_B64URL = re.compile(api.BASE64URL_PATTERN)

# What a refusal says about a field whose value does not fit its model (a missing one "is
# required"); msgspec's own words (type, pattern, length) for the rest.
_MESSAGES = {
    "platform": 'must be "webpush", "apns" or "fcm"',
    "environment": 'must be "production" or "sandbox"',
    "notify": 'must be "major" or "all"',
    "subscription.keys.p256dh": "must be an uncompressed P-256 point in base64url",
    "subscription.keys.auth": "must be 16 bytes in base64url",
    "subscription.endpoint": f"must be an https URL of at most {api.MAX_ENDPOINT_LENGTH} characters",
}
_TOKEN_MESSAGES = {
    "apns": "must be the device token in hex (an even number of digits, 32 to 200)",
    "fcm": "must be an FCM registration token (printable ASCII, at most"
    f" {api.MAX_FCM_TOKEN_LENGTH} characters)",
}


class FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def _convert(body: Any, model: Any, messages: Mapping[str, str]) -> Any:
    """`body` (parsed JSON) as `model`, or FieldError naming the first field that does not fit."""
    try:
        return convert_body(body, model)
    except msgspec.ValidationError as exc:
        field, wording = validation_field(exc)
        if field is None:
            raise FieldError("body", "must be a JSON object") from None
        if wording != "is required":
            wording = messages.get(field, wording)
        raise FieldError(field, wording) from None
    except InvalidInput:
        raise FieldError("body", LONE_SURROGATES) from None


def b64url_decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def subscription_keys(keys: Mapping[str, str]) -> tuple[bytes, bytes]:
    """(p256dh point, auth secret) of a Web Push subscription, as a browser makes them (the
    uncompressed P-256 point, a 16-byte secret, base64url); FieldError naming the bad one."""
    _, point, secret = subscription_public_key(keys)
    return point, secret


def subscription_public_key(
    keys: Mapping[str, str],
) -> tuple[ec.EllipticCurvePublicKey, bytes, bytes]:
    """The checked keys of a subscription: (the P-256 public key, the same as the point the
    browser gave, the auth secret); FieldError naming the bad one. At registration, and again
    by the provider before it encrypts (which needs the key it decodes to: one decode)."""
    try:
        point = b64url_decode(keys.get("p256dh", ""))
        if len(point) != 65:
            raise ValueError("compressed")
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error):
        field = "subscription.keys.p256dh"
        raise FieldError(field, _MESSAGES[field]) from None
    try:
        secret = b64url_decode(keys.get("auth", ""))
    except (ValueError, binascii.Error):
        secret = b""
    if len(secret) != 16:
        field = "subscription.keys.auth"
        raise FieldError(field, _MESSAGES[field])
    return public_key, point, secret


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
    platform = body.get("platform") if isinstance(body, dict) else None
    if platform in PLATFORMS and platform not in configured(settings):
        raise FieldError("platform", f"{platform} is not configured on this server")
    messages = dict(_MESSAGES)
    if platform in _TOKEN_MESSAGES:
        messages["token"] = _TOKEN_MESSAGES[platform]
    registration: api.DeviceRegistration = _convert(body, api.DeviceRegistration, messages)
    if isinstance(registration, api.ApnsRegistration):
        return Device(new_id, "apns", registration.token.lower(), {}, registration.environment)
    if isinstance(registration, api.FcmRegistration):
        return Device(new_id, "fcm", registration.token)
    subscription = registration.subscription
    endpoint = subscription.endpoint
    if not valid_text(endpoint):
        # JSON allows lone surrogates; the store cannot encode them.
        raise FieldError("subscription.endpoint", LONE_SURROGATES)
    refusal = endpoint_refusal(endpoint, settings.push_webpush_hosts)
    if refusal:
        raise FieldError("subscription.endpoint", refusal)
    keys = {"p256dh": subscription.keys.p256dh, "auth": subscription.keys.auth}
    subscription_keys(keys)
    return Device(new_id, "webpush", endpoint, keys)


def parse_channel(channel: str) -> tuple[str, str]:
    """("story" | "feed", id) of a channel name (the API's Channel, with an id that could be
    stored); FieldError when it is neither."""
    kind, _, ident = channel.partition(":")
    if not (_fits(channel, Channel) and plausible_id(ident)):
        raise FieldError("channel", 'must be "story:<id>" or "feed:<id>"')
    return kind, ident


def _fits(value: Any, model: Any) -> bool:
    try:
        msgspec.convert(value, model)
    except msgspec.ValidationError:
        return False
    return True


def parse_notify(body: Any) -> Notify:
    """The `notify` of a PUT .../subscriptions/{channel} body (none: "major")."""
    if body is None:
        return "major"
    request: api.SubscriptionRequest = _convert(body, api.SubscriptionRequest, _MESSAGES)
    return request.notify
