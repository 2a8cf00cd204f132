"""What the dispatcher hands a provider, and what a provider answers.

Pure data: the dispatcher decides *what* to tell a device (model), a provider only knows *how* to
deliver it over its own protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from liveupdates.models import Device, Platform

__all__ = ["Device", "Notification", "Platform", "Provider", "SendResult", "SendStatus"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification about one story, ready for any provider.

    `collapse_key` is the story id: every provider is given it so that a newer notification replaces
    the older one on the device. `updates` counts the update events this notification covers
    (more than 1 after coalescing).
    """

    channel: str
    seq: int
    epoch: str
    kind: Literal["created", "updated"]
    story_id: str
    story_title: str
    story_url: str
    title: str
    body: str
    updates: int = 1
    urgency: Literal["high", "normal"] = "normal"
    ttl: int = 86400

    @property
    def collapse_key(self) -> str:
        return self.story_id

    def payload(self) -> dict[str, Any]:
        """The JSON document an app or service worker receives (Web Push plaintext, data fields)."""
        return {
            "type": "notification",
            "channel": self.channel,
            "seq": self.seq,
            "epoch": self.epoch,
            "kind": self.kind,
            "story": {"id": self.story_id, "title": self.story_title, "url": self.story_url},
            "title": self.title,
            "body": self.body,
            "updates": self.updates,
        }


# sent: delivered to the push service. gone: the device no longer exists there (remove it).
# retry: try again later (429 / 5xx / network), after `retry_after` seconds when the service said.
# too_large: the payload was refused for its size (shorten the body and send again).
# failed: refused for another reason; retrying will not help.
SendStatus = Literal["sent", "gone", "retry", "too_large", "failed"]


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    retry_after: float | None = None
    detail: str = ""


class Provider(Protocol):
    """One push service. Implementations live in liveupdates/push/providers/."""

    platform: Platform

    async def send(self, device: Device, notification: Notification) -> SendResult:
        """Deliver one notification; never raises for the service's answers or network errors."""
        ...

    async def aclose(self) -> None: ...
