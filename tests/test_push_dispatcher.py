"""The dispatcher: from the channel logs to one well-made notification per device and story.

Driven step by step (scan_once, send_once) with a clock the test sets, against real SQLite
backends and a recording provider standing in for the push service.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from liveupdates.backends import Backends, open_url
from liveupdates.models import Device
from liveupdates.push.dispatcher import Dispatcher
from liveupdates.push.model import Notification, SendResult
from liveupdates.settings import Settings
from liveupdates.store.devices import Cursor, Notify
from tests.support.pushapp import publish, push_settings, story
from tests.support.pushdouble import RecordingProvider

P1 = "The harbour wall gave way at high tide on Sunday night."
P2 = "Water reached the fish market within minutes."
P3 = "The coastguard closed the quay to traffic."
P4 = "Repairs are expected to take a month."


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    backends: Backends
    provider: RecordingProvider
    clock: Clock
    settings: Settings

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(
            self.settings,
            self.backends.store,
            self.backends.devices,
            {"webpush": self.provider},
            clock=self.clock,
        )

    async def device(self, n: int, channel: str, notify: Notify = "major") -> str:
        device = Device(
            f"dev{n:04d}",
            "webpush",
            f"https://fcm.push.example/send/{n}",
            {"p256dh": "k", "auth": "a"},
        )
        device_id = await self.backends.devices.register(device, "h", self.clock())
        bounds = await self.backends.store.log_bounds(channel)
        await self.backends.devices.init_cursor(channel, Cursor(bounds.epoch, bounds.last))
        await self.backends.devices.subscribe(device_id, channel, notify, 10)
        return device_id


async def step(d: Dispatcher) -> None:
    await d.scan_once()
    while await d.send_once():
        await d.drain()
    await d.drain()


@pytest.fixture(params=["sqlite", "redis"])
async def backends(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    if request.param == "sqlite":
        b = open_url(f"sqlite://{tmp_path / 'd.sqlite3'}")
    else:
        b = open_url(
            request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
        )
    yield b
    await b.close()


def rig(backends: Backends, provider: RecordingProvider | None = None, **settings: object) -> Rig:
    return Rig(backends, provider or RecordingProvider(), Clock(), push_settings(**settings))


async def test_paragraphs_added_notify_every_follower_once(backends: Backends) -> None:
    r = rig(backends)
    await publish(backends.store, story([P1, P2]))
    ids = [await r.device(n, "story:harbour-wall", "major" if n % 2 else "all") for n in range(6)]
    d = r.dispatcher()
    await step(d)
    assert r.provider.calls == []  # following starts now: nothing old is sent

    await publish(backends.store, story([P1, P2, P3, P4]))
    await step(d)
    await step(d)
    bounds = await backends.store.log_bounds("story:harbour-wall")
    for device_id in ids:
        notes = r.provider.sent_to(device_id)
        assert len(notes) == 1, device_id
        note = notes[0]
        assert note.title == "Harbour wall breached"
        assert note.body == "2 paragraphs added"
        assert (note.channel, note.seq, note.epoch) == ("story:harbour-wall", 2, bounds.epoch)
        assert (note.kind, note.updates, note.collapse_key) == ("updated", 1, "harbour-wall")
        assert note.story_url == "https://gazette.example/news/harbour-wall"
        assert note.urgency == "normal"
    assert await backends.devices.counters() == {"webpush": {"sent": 6}}


async def test_one_word_fix_notifies_only_all_followers(backends: Backends) -> None:
    r = rig(backends)
    await publish(backends.store, story([P1, P2]))
    major = await r.device(1, "story:harbour-wall", "major")
    everything = await r.device(2, "story:harbour-wall", "all")
    d = r.dispatcher()
    await publish(backends.store, story([P1, P2.replace("minutes", "moments")]))
    await step(d)
    assert r.provider.sent_to(major) == []
    [note] = r.provider.sent_to(everything)
    assert note.body == "1 paragraph updated"


async def test_headline_change_is_major_and_urgent(backends: Backends) -> None:
    r = rig(backends)
    await publish(backends.store, story([P1]))
    major = await r.device(1, "story:harbour-wall", "major")
    d = r.dispatcher()
    await publish(backends.store, story([P1], title="Harbour wall breached: quay closed"))
    await step(d)
    [note] = r.provider.sent_to(major)
    assert (note.title, note.urgency) == ("Harbour wall breached: quay closed", "high")


async def test_feed_followers_hear_of_new_stories(backends: Backends) -> None:
    r = rig(backends)
    await publish(backends.store, story([P1]))  # the feed exists
    major = await r.device(1, "feed:gazette", "major")
    everything = await r.device(2, "feed:gazette", "all")
    d = r.dispatcher()
    other = story([P3], title="Ferry timetable changes")
    from dataclasses import replace

    await publish(backends.store, replace(other, id="ferry", url="https://gazette.example/ferry"))
    await publish(backends.store, story([P1, P2]))  # an update: only for "all"
    await step(d)
    [note] = r.provider.sent_to(major)
    assert (note.kind, note.title, note.urgency) == ("created", "Ferry timetable changes", "high")
    assert note.channel == "feed:gazette"
    assert sorted(n.story_id for n in r.provider.sent_to(everything)) == ["ferry", "harbour-wall"]


async def test_five_changes_in_the_gap_give_one_now_and_one_covering_the_rest(
    backends: Backends,
) -> None:
    r = rig(backends, push_min_gap=60.0)
    paragraphs = [P1]
    await publish(backends.store, story(paragraphs))
    device_id = await r.device(1, "story:harbour-wall", "major")
    d = r.dispatcher()
    for n in range(5):
        paragraphs.append(f"Update {n}: the tide is turning.")
        await publish(backends.store, story(paragraphs))
        await step(d)
        r.clock.now += 10
    assert [n.seq for n in r.provider.sent_to(device_id)] == [2]
    r.clock.now += 9  # 59 s after the first send: still inside the gap
    await step(d)
    assert len(r.provider.sent_to(device_id)) == 1
    r.clock.now += 1
    await step(d)
    first, rest = r.provider.sent_to(device_id)
    assert first.seq == 2
    assert (rest.seq, rest.updates) == (6, 4)
    assert rest.body.startswith("4 updates: 1 paragraph added")
    await step(d)
    assert len(r.provider.sent_to(device_id)) == 2


async def test_gone_removes_the_device(backends: Backends) -> None:
    provider = RecordingProvider(answer=lambda d, n, calls: SendResult("gone"))
    r = rig(backends, provider)
    await publish(backends.store, story([P1]))
    device_id = await r.device(1, "story:harbour-wall", "all")
    d = r.dispatcher()
    await publish(backends.store, story([P1, P2]))
    await step(d)
    assert len(provider.calls) == 1
    assert await backends.devices.get(device_id) is None
    assert await backends.devices.channels() == []
    assert await backends.devices.counters() == {"webpush": {"removed": 1}}


async def test_retry_waits_for_retry_after_then_sends(backends: Backends) -> None:
    def answer(device: Device, note: Notification, calls: int) -> SendResult:
        return SendResult("retry", retry_after=30) if calls == 0 else SendResult("sent")

    provider = RecordingProvider(answer=answer)
    r = rig(backends, provider)
    await publish(backends.store, story([P1]))
    device_id = await r.device(1, "story:harbour-wall")
    d = r.dispatcher()
    await publish(backends.store, story([P1, P2]))
    await step(d)
    assert [c[2].status for c in provider.calls] == ["retry"]
    r.clock.now += 29
    await step(d)
    assert len(provider.calls) == 1
    r.clock.now += 1
    await step(d)
    assert [c[2].status for c in provider.calls] == ["retry", "sent"]
    [note] = provider.sent_to(device_id)
    assert note.seq == 2


async def test_retries_are_bounded_then_failed(backends: Backends) -> None:
    provider = RecordingProvider(answer=lambda d, n, c: SendResult("retry"))
    r = rig(backends, provider, push_max_attempts=3)
    await publish(backends.store, story([P1]))
    await r.device(1, "story:harbour-wall")
    d = r.dispatcher()
    await publish(backends.store, story([P1, P2]))
    for _ in range(6):
        await step(d)
        r.clock.now += 400  # past any backoff
    assert len(provider.calls) == 3
    assert await backends.devices.counters() == {"webpush": {"failed": 1}}
    assert (await backends.devices.queue_stats()).depth == 0


async def test_too_large_shortens_the_body_and_sends_again(backends: Backends) -> None:
    def answer(device: Device, note: Notification, calls: int) -> SendResult:
        return SendResult("too_large") if len(note.body) > 20 else SendResult("sent")

    provider = RecordingProvider(answer=answer)
    r = rig(backends, provider)
    await publish(backends.store, story([P1]))
    device_id = await r.device(1, "story:harbour-wall", "all")
    d = r.dispatcher()
    await publish(backends.store, story([P1, P2, P3, P4], title="Harbour wall breached again"))
    await step(d)
    [note] = provider.sent_to(device_id)
    assert 0 < len(note.body) <= 20
    assert len(provider.calls) > 1


async def test_followers_are_paged_and_a_restart_resends_nothing(backends: Backends) -> None:
    r = rig(backends)
    await publish(backends.store, story([P1]))
    ids = [await r.device(n, "story:harbour-wall", "major") for n in range(1200)]
    d = r.dispatcher()
    await publish(backends.store, story([P1, P2]))
    await step(d)
    await step(d)
    assert sorted(dev.id for dev, _ in r.provider.sent) == sorted(ids)
    # A new dispatcher (a restart) on the same store sends nothing again.
    again = r.dispatcher()
    await step(again)
    assert len(r.provider.sent) == 1200


async def test_events_read_in_one_batch_give_one_notification_per_story(
    backends: Backends,
) -> None:
    """Three updates published before the dispatcher looks: read as one batch, merged into each
    follower's state in one go, sent as one notification covering all three."""
    r = rig(backends, push_min_gap=0.0)
    await publish(backends.store, story([P1]))
    followers = [await r.device(n, "story:harbour-wall", "all") for n in range(3)]
    d = r.dispatcher()
    for paragraphs in ([P1, P2], [P1, P2, P3], [P1, P2, P3, P4]):
        await publish(backends.store, story(paragraphs))
    await step(d)
    for device_id in followers:
        [note] = r.provider.sent_to(device_id)
        assert (note.updates, note.seq) == (3, 4)
    await step(d)
    assert len(r.provider.sent) == 3


async def test_expire_forgets_idle_devices(backends: Backends) -> None:
    r = rig(backends, push_device_ttl_days=1.0)
    await publish(backends.store, story([P1]))
    device_id = await r.device(1, "story:harbour-wall")
    d = r.dispatcher()
    r.clock.now += 86400 + 1
    assert await d.expire() == 1
    assert await backends.devices.get(device_id) is None


async def test_push_test_sends_to_one_device(backends: Backends) -> None:
    r = rig(backends)
    await publish(backends.store, story([P1]))
    device_id = await r.device(1, "story:harbour-wall")
    result = await r.dispatcher().send_test(device_id)
    assert result.status == "sent"
    [note] = r.provider.sent_to(device_id)
    assert note.title == "liveupdates test"
    assert (await r.dispatcher().send_test("nope-" + secrets.token_hex(2))).status == "failed"
