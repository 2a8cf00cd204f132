"""A recording push provider: the test double of an external push service (APNs, FCM, a browser's
push service) for tests of the dispatcher's own logic. Providers themselves are tested against
strict local servers (tests/support/pushservers.py).

    provider = RecordingProvider()                      # answers "sent"
    provider = RecordingProvider(answer=lambda device, note, n: SendResult("gone"))
    provider.sent -> [(device, notification), ...] in order of the calls
"""

from __future__ import annotations

from collections.abc import Callable

from liveupdates.models import Device, Platform
from liveupdates.push.model import Notification, SendResult

# (device, notification, how many calls this device had before) -> the service's answer
Answer = Callable[[Device, Notification, int], SendResult]


def always_sent(device: Device, note: Notification, calls: int) -> SendResult:
    return SendResult("sent")


class RecordingProvider:
    def __init__(self, answer: Answer = always_sent, platform: Platform = "webpush") -> None:
        self.platform: Platform = platform
        self.answer = answer
        self.calls: list[tuple[Device, Notification, SendResult]] = []
        self.closed = False

    @property
    def sent(self) -> list[tuple[Device, Notification]]:
        return [(d, n) for d, n, r in self.calls if r.status == "sent"]

    def sent_to(self, device_id: str) -> list[Notification]:
        return [n for d, n in self.sent if d.id == device_id]

    async def send(self, device: Device, notification: Notification) -> SendResult:
        before = sum(1 for d, _, _ in self.calls if d.id == device.id)
        result = self.answer(device, notification, before)
        self.calls.append((device, notification, result))
        return result

    async def aclose(self) -> None:
        self.closed = True
