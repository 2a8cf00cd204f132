"""Device push (issue 11, docs/push.md): the requests and answers of /v1/devices and
/v1/push/vapid-public-key, as msgspec Structs.

The routes are served by the push part of the service; these models are what the public API
document says about them and what those routes validate bodies with (push/registration.py, which
adds what a schema cannot say: a P-256 point, a 16-byte secret, an allowed push service host).
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from liveupdates import models
from liveupdates.api.models import Channel

MAX_ENDPOINT_LENGTH = 2048
MAX_FCM_TOKEN_LENGTH = 4096
BASE64URL_PATTERN = "^[A-Za-z0-9_-]+={0,2}$"

Base64Url = Annotated[str, Meta(pattern=BASE64URL_PATTERN)]
Notify = Annotated[
    models.Notify,
    Meta(description="major: new paragraphs or a new headline; all: every update"),
]


class VapidPublicKey(Struct, rename="camel"):
    """What a page passes to pushManager.subscribe as applicationServerKey."""

    public_key: Annotated[
        Base64Url, Meta(description="base64url of the uncompressed P-256 point (65 bytes)")
    ]


class WebPushKeys(Struct):
    p256dh: Annotated[
        Base64Url,
        Meta(max_length=200, description="the browser's uncompressed P-256 public key, base64url"),
    ]
    auth: Annotated[Base64Url, Meta(max_length=100, description="16-byte auth secret, base64url")]


class WebPushSubscription(Struct):
    """Exactly what the browser's PushSubscription.toJSON() gives (expirationTime may be there)."""

    endpoint: Annotated[
        str,
        Meta(
            pattern="^https?://",
            max_length=MAX_ENDPOINT_LENGTH,
            description="https URL on an allowed push service host (setting push.webpush_hosts;"
            " plain http only on a loopback host:port entry, for tests)",
        ),
    ]
    keys: WebPushKeys
    expirationTime: int | None = None  # the browser's own name


class WebPushRegistration(Struct, tag_field="platform", tag="webpush"):
    subscription: WebPushSubscription


class ApnsRegistration(Struct, tag_field="platform", tag="apns", kw_only=True):
    token: Annotated[
        str,
        Meta(
            pattern="^(?:[0-9A-Fa-f]{2}){16,100}$",
            description="APNs device token, hex (32 to 200 digits)",
        ),
    ]
    environment: Literal["production", "sandbox"] = "production"


class FcmRegistration(Struct, tag_field="platform", tag="fcm"):
    token: Annotated[
        str,
        Meta(
            pattern="^[!-~]+$",  # printable ASCII, no spaces
            max_length=MAX_FCM_TOKEN_LENGTH,
            description="FCM registration token",
        ),
    ]


DeviceRegistration = WebPushRegistration | ApnsRegistration | FcmRegistration


class DeviceRegistered(Struct):
    """The same endpoint or token registered again keeps its device_id with a new secret."""

    device_id: str
    secret: Annotated[
        str, Meta(description="the device's bearer token: Authorization: Bearer <secret>")
    ]


class SubscriptionRequest(Struct):
    notify: Notify = "major"


class DeviceSubscription(Struct):
    channel: Channel
    notify: Notify


class DeviceSubscriptions(Struct):
    subscriptions: list[DeviceSubscription]
