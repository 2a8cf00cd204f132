"""Device push (issue 11, docs/push.md): the requests and answers of /v1/devices and
/v1/push/vapid-public-key, as msgspec Structs.

The routes are served by the push part of the service; these models are what the public API
document says about them and what those routes validate bodies with.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from liveupdates.api.models import Channel

Base64Url = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]+={0,2}$")]
Notify = Annotated[
    Literal["major", "all"],
    Meta(description="major: new paragraphs or a new headline; all: every update"),
]


class VapidPublicKey(Struct, rename="camel"):
    """What a page passes to pushManager.subscribe as applicationServerKey."""

    public_key: Annotated[
        Base64Url, Meta(description="base64url of the uncompressed P-256 point (65 bytes)")
    ]


class WebPushKeys(Struct):
    p256dh: Annotated[Base64Url, Meta(description="the browser's P-256 public key, base64url")]
    auth: Annotated[Base64Url, Meta(description="16-byte auth secret, base64url")]


class WebPushSubscription(Struct):
    """Exactly what the browser's PushSubscription.toJSON() gives (expirationTime may be there)."""

    endpoint: Annotated[
        str,
        Meta(
            pattern="^https://",
            max_length=2048,
            description="https URL on an allowed push service host (setting push.webpush_hosts)",
        ),
    ]
    keys: WebPushKeys
    expirationTime: int | None = None  # the browser's own name


class WebPushRegistration(Struct, tag_field="platform", tag="webpush"):
    subscription: WebPushSubscription


class ApnsRegistration(Struct, tag_field="platform", tag="apns", kw_only=True):
    token: Annotated[str, Meta(pattern="^[0-9A-Fa-f]{16,200}$", description="APNs device token")]
    environment: Literal["production", "sandbox"] = "production"


class FcmRegistration(Struct, tag_field="platform", tag="fcm"):
    token: Annotated[str, Meta(min_length=1, max_length=4096, description="FCM registration token")]


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
