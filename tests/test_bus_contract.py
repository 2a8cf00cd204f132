"""The contract every Bus backend keeps: per channel, every entry once, in seq order, no holes.

Parametrised by backend name; a Redis bus joins by adding "redis" to BACKENDS and a branch to
`make_bus`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from liveupdates.bus import Bus, HistoryLost, InMemoryBus, Subscription
from liveupdates.models import LogEntry, Snapshot, feed_channel, story_channel
from liveupdates.store.sqlite import SQLiteStore

BACKENDS = ["memory"]
DEADLINE = 5.0


async def make_bus(kind: str, store: SQLiteStore) -> Bus:
    if kind == "memory":
        return InMemoryBus(store)
    raise AssertionError(f"unknown bus backend {kind}")


class Writer:
    """Appends story versions the way the pipeline does, so the log is real."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.versions: dict[str, int] = {}

    async def append(self, story: str, feed: str = "f") -> list[LogEntry]:
        version = self.versions.get(story, 0)
        snap = Snapshot(id=story, feed=feed, url=f"https://x.example/{story}", title=f"v{version}")
        event = {
            "kind": "updated" if version else "created",
            "story": {"id": story, "version": version + 1},
        }
        entries = await self.store.append_version(
            snap, f"h{version}", version, [event], [story_channel(story), feed_channel(feed)]
        )
        self.versions[story] = version + 1
        return entries


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Bus, Writer]]:
    store = SQLiteStore(tmp_path / "bus.sqlite3", log_retention=None)
    bus = await make_bus(request.param, store)
    yield bus, Writer(store)
    await bus.close()
    await store.close()


async def collect(sub: Subscription, upto: int) -> list[int]:
    """Seqs yielded until `upto` is reached (or the deadline fails the test)."""
    seen: list[int] = []

    async def run() -> None:
        async for batch in sub:
            seen.extend(e.seq for e in batch)
            if seen and seen[-1] >= upto:
                return

    await asyncio.wait_for(run(), DEADLINE)
    return seen


async def test_live_entries_arrive_in_order(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    sub = await bus.subscribe("story:a")
    for _ in range(5):
        await bus.publish(await w.append("a"))
    assert await collect(sub, 5) == [1, 2, 3, 4, 5]
    await sub.close()


async def test_only_the_subscribed_channel_is_delivered(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    sub_a = await bus.subscribe("story:a")
    sub_feed = await bus.subscribe("feed:f")
    await bus.publish(await w.append("b"))
    await bus.publish(await w.append("a"))
    got = await collect(sub_a, 1)
    assert got == [1]
    assert await collect(sub_feed, 2) == [1, 2]


async def test_entries_published_out_of_order_come_out_in_order_once(
    env: tuple[Bus, Writer],
) -> None:
    bus, w = env
    sub = await bus.subscribe("story:a")
    batches = [await w.append("a") for _ in range(4)]
    for batch in (batches[2], batches[0], batches[3], batches[1], batches[3]):
        await bus.publish(batch)
    assert await collect(sub, 4) == [1, 2, 3, 4]


async def test_a_hole_is_filled_from_the_log(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    sub = await bus.subscribe("story:a")
    await w.append("a")
    await w.append("a")  # written but never published: a lost notification
    await bus.publish(await w.append("a"))
    assert await collect(sub, 3) == [1, 2, 3]


async def test_no_gap_between_read_since_and_live(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    for _ in range(3):
        await bus.publish(await w.append("a"))
    sub = await bus.subscribe("story:a")  # listen first ...
    await bus.publish(await w.append("a"))  # ... something lands in between ...
    history = await bus.read_since("story:a", 0, 100)  # ... then read the log
    for _ in range(2):
        await bus.publish(await w.append("a"))
    live = await collect(sub, 6)
    merged = [e.seq for e in history] + [s for s in live if s > history[-1].seq]
    assert merged == [1, 2, 3, 4, 5, 6]
    assert live[0] == 4  # the subscription starts where the log stood when it began


async def test_bounds_and_read_since_reflect_the_log(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    empty = await bus.bounds("story:none")
    assert (empty.first, empty.last) == (0, 0)
    assert empty.epoch
    for _ in range(3):
        await w.append("a")
    bounds = await bus.bounds("story:a")
    assert (bounds.first, bounds.last) == (1, 3)
    assert bounds.epoch == empty.epoch
    entries = await bus.read_since("story:a", 1, 1)
    assert [(e.channel, e.seq) for e in entries] == [("story:a", 2)]
    assert entries[0].event["story"]["version"] == 2


async def test_closed_subscription_ends_and_others_keep_going(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    first = await bus.subscribe("story:a")
    second = await bus.subscribe("story:a")
    await first.close()
    await bus.publish(await w.append("a"))
    assert await collect(second, 1) == [1]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(first.__anext__(), DEADLINE)


async def test_publishing_to_a_channel_nobody_listens_to_is_fine(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    await bus.publish(await w.append("lonely"))
    await bus.publish([])


async def test_a_hole_lost_to_retention_is_reported_not_skipped(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "short.sqlite3", log_retention=2)
    try:
        for kind in BACKENDS:
            bus = await make_bus(kind, store)
            w = Writer(store)
            sub = await bus.subscribe("story:a")
            for _ in range(4):
                await w.append("a")  # 1..4 written, only 3 and 4 retained, nothing published
            await bus.publish(await w.append("a"))  # seq 5 arrives: 1 and 2 are gone
            with pytest.raises(HistoryLost) as lost:
                await asyncio.wait_for(sub.__anext__(), DEADLINE)
            assert lost.value.position == 5
            await bus.publish(await w.append("a"))
            assert await collect(sub, 6) == [6]
            await bus.close()
    finally:
        await store.close()
