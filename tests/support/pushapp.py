"""Helpers for device-push tests: settings, browser-like subscription keys, stories in the store."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from liveupdates.events import channels_for, created_event, updated_event
from liveupdates.models import Snapshot
from liveupdates.settings import Settings
from liveupdates.store.base import Store

# A loopback entry: plain http allowed there (no request ever goes out in these tests).
TEST_PUSH_HOST = "127.0.0.1:9"


def push_settings(**changes: Any) -> Settings:
    base = Settings(
        hub_demo=False,
        push_webpush_hosts=("*.push.example", TEST_PUSH_HOST),
        push_min_gap=0.0,
        push_scan_interval=0.05,
    )
    return replace(base, **changes)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def browser_keys() -> dict[str, str]:
    """p256dh and auth as a browser's PushSubscription.toJSON() gives them."""
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}


def subscription(n: int = 1) -> dict[str, Any]:
    return {"endpoint": f"https://fcm.push.example/send/{n}", "keys": browser_keys()}


def story(version_paragraphs: list[str], title: str = "Harbour wall breached") -> Snapshot:
    return Snapshot(
        id="harbour-wall",
        feed="gazette",
        url="https://gazette.example/news/harbour-wall",
        title=title,
        paragraphs=tuple(version_paragraphs),
    )


async def publish(store: Store, new: Snapshot) -> None:
    """Store the next version of `new`'s story with its event, as the ingestor does."""
    latest = await store.latest(new.id)
    if latest is None:
        events = [created_event(new)]
        expected = 0
    else:
        events = [updated_event(latest.snapshot, new, latest.version)]
        expected = latest.version
    await store.append_version(
        new, f"h{expected + 1}-{hash(new)}", expected, events, channels_for(new)
    )
