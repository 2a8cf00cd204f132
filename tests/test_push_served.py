"""Device push inside the app (`liveupdates serve` runs the dispatcher in-process), end to end
through the public API, and what ops see of it (/v1/admin/push, /metrics)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx

from liveupdates import metrics
from liveupdates.backends import Backends, open_url
from liveupdates.models import Device
from liveupdates.push.dispatcher import Dispatcher
from liveupdates.push.model import Notification, SendResult
from liveupdates.push.service import run_dispatcher
from liveupdates.server import build_app
from liveupdates.settings import Settings
from tests.support.pushapp import publish, push_settings, story, subscription
from tests.support.pushdouble import RecordingProvider
from tests.support.waiting import until

ADMIN = "admin-token-for-push-tests"
P1 = "The harbour wall gave way at high tide on Sunday night."
P2 = "Water reached the fish market within minutes."


async def test_serve_dispatches_what_the_api_set_up(tmp_path: Path) -> None:
    settings = push_settings(admin_token=ADMIN)
    backends = open_url(f"sqlite://{tmp_path / 'served.sqlite3'}")
    provider = RecordingProvider()

    def run_push(s: Settings, b: Backends) -> AbstractAsyncContextManager[Dispatcher | None]:
        return run_dispatcher(s, b, {"webpush": provider})

    app = build_app(settings, backends, run_push=run_push, self_url="http://127.0.0.1:1")
    sent_before = metrics.value(
        "liveupdates_push_notifications_total", provider="webpush", outcome="sent"
    )
    try:
        await publish(backends.store, story([P1]))
        async with app.router.lifespan_context(app):
            assert app.state.push is not None
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                r = await client.post(
                    "/v1/devices", json={"platform": "webpush", "subscription": subscription()}
                )
                device_id, secret = r.json()["device_id"], r.json()["secret"]
                r = await client.put(
                    f"/v1/devices/{device_id}/subscriptions/story:harbour-wall",
                    headers={"Authorization": f"Bearer {secret}"},
                )
                assert r.status_code == 200
                await publish(backends.store, story([P1, P2]))
                await until(lambda: provider.sent_to(device_id), timeout=20)
                [note] = provider.sent_to(device_id)
                assert (note.title, note.body, note.seq) == (
                    "Harbour wall breached",
                    "1 paragraph added",
                    2,
                )

                # The dispatcher records the answer just after the provider gave it.
                async def counted() -> bool:
                    return (await backends.devices.counters()).get("webpush") == {"sent": 1}

                await until(counted, timeout=20)
                r = await client.get("/v1/admin/push")
                assert r.status_code == 401
                auth = {"Authorization": f"Bearer {ADMIN}"}
                r = await client.get("/v1/admin/push", headers=auth)
                assert r.status_code == 200
                body = r.json()
                assert body["devices"] == {"webpush": 1, "apns": 0, "fcm": 0}
                assert body["providers"]["webpush"] == {"sent": 1, "failed": 0, "removed": 0}
                assert body["queue"] == {"depth": 0, "oldest_pending_age_seconds": 0.0}
                text = (await client.get("/metrics")).text
                assert "liveupdates_push_notifications_total" in text
                assert "liveupdates_push_queue_depth" in text
        assert provider.closed
        sent_after = metrics.value(
            "liveupdates_push_notifications_total", provider="webpush", outcome="sent"
        )
        assert sent_after == sent_before + 1
    finally:
        await backends.close()


class StuckProvider(RecordingProvider):
    """A push service that never answers."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self.never = asyncio.Event()

    async def send(self, device: Device, notification: Notification) -> SendResult:
        self.waiting += 1
        await self.never.wait()
        return SendResult("sent")


async def test_a_provider_that_never_answers_delays_nothing_else(tmp_path: Path) -> None:
    settings = push_settings()
    backends = open_url(f"sqlite://{tmp_path / 'stuck.sqlite3'}")
    provider = StuckProvider()

    def run_push(s: Settings, b: Backends) -> AbstractAsyncContextManager[Dispatcher | None]:
        return run_dispatcher(s, b, {"webpush": provider})

    app = build_app(settings, backends, run_push=run_push, self_url="http://127.0.0.1:1")
    try:
        await publish(backends.store, story([P1]))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for n in range(3):
                    r = await client.post(
                        "/v1/devices", json={"platform": "webpush", "subscription": subscription(n)}
                    )
                    device_id, secret = r.json()["device_id"], r.json()["secret"]
                    await client.put(
                        f"/v1/devices/{device_id}/subscriptions/story:harbour-wall",
                        headers={"Authorization": f"Bearer {secret}"},
                    )
                await publish(backends.store, story([P1, P2]))
                await until(lambda: provider.waiting == 3, timeout=20)
                # Sends hang; the hub, the API and the store go on answering.
                r = await client.get("/v1/stories/harbour-wall")
                assert r.status_code == 200
                assert r.json()["paragraphs"] == [P1, P2]
                r = await client.post(
                    "/v1/devices", json={"platform": "webpush", "subscription": subscription(9)}
                )
                assert r.status_code == 201
                await publish(backends.store, story([P1, P2, "More."]))
                r = await client.get("/v1/stories/harbour-wall/updates?since=0")
                assert r.json()["seq"] == 3
        # Leaving the app cancelled the hanging sends: nothing was recorded as sent.
        assert await backends.devices.counters() == {}
    finally:
        await backends.close()
