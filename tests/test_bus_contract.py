"""The contract every Bus backend keeps: per channel, every entry once, in seq order, no holes.

Parametrised by backend name: "memory" (InMemoryBus over SQLite) and "redis" (RedisBus over a
RedisStore, on the test Redis under a throwaway key prefix).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from liveupdates.bus import Bus, HistoryLost, InMemoryBus, Subscription
from liveupdates.bus.redis import RedisBus
from liveupdates.models import LogEntry, Snapshot, feed_channel, story_channel
from liveupdates.store.base import Store
from liveupdates.store.redis import RedisStore
from liveupdates.store.sqlite import SQLiteStore

BACKENDS = ["memory", "redis"]
DEADLINE = 5.0


@pytest.fixture
async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """`await open_backend(kind, log_retention=None)` -> (store, bus); all closed at teardown."""
    opened: list[tuple[Store, Bus]] = []
    clients: list[aioredis.Redis] = []

    async def open_(kind: str, log_retention: int | None = None) -> tuple[Store, Bus]:
        store: Store
        bus: Bus
        if kind == "memory":
            path = tmp_path / f"bus{len(opened)}.sqlite3"
            store = SQLiteStore(path, log_retention=log_retention)
            bus = InMemoryBus(store)
        elif kind == "redis":
            url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("redis_prefix") + f"{len(opened)}:"
            client = aioredis.Redis.from_url(url, decode_responses=True)
            clients.append(client)
            redis_store = RedisStore.from_client(client, prefix, log_retention=log_retention)
            store, bus = redis_store, RedisBus(client, redis_store, block_seconds=1.0)
        else:
            raise AssertionError(f"unknown bus backend {kind}")
        opened.append((store, bus))
        return store, bus

    yield open_
    for store, bus in reversed(opened):
        await bus.close()
        await store.close()
    for client in clients:
        await client.aclose()


class Writer:
    """Appends story versions the way the pipeline does, so the log is real."""

    def __init__(self, store: Store) -> None:
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
async def env(request: pytest.FixtureRequest, open_backend: object) -> tuple[Bus, Writer]:
    store, bus = await open_backend(request.param)  # type: ignore[operator]
    return bus, Writer(store)


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


async def test_ping_answers_while_the_backend_is_up(env: tuple[Bus, Writer]) -> None:
    bus, _ = env
    await bus.ping()


async def test_bounds_and_read_since_reflect_the_log(env: tuple[Bus, Writer]) -> None:
    bus, w = env
    empty = await bus.bounds("story:none")
    assert (empty.first, empty.last) == (0, 0)
    assert empty.epoch
    # Epochs are per channel (Redis) or per log file (SQLite): compare one channel's only. A
    # reader that looked before the first event keeps its epoch once events arrive.
    before = await bus.bounds("story:a")
    for _ in range(3):
        await w.append("a")
    bounds = await bus.bounds("story:a")
    assert (bounds.first, bounds.last) == (1, 3)
    assert bounds.epoch == before.epoch
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


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_hole_lost_to_retention_is_reported_not_skipped(
    kind: str, open_backend: object
) -> None:
    store, bus = await open_backend(kind, log_retention=2)  # type: ignore[operator]
    w = Writer(store)
    sub = await bus.subscribe("story:a")
    # One version with five events: seqs 1..5 land at once, only 4 and 5 are retained, and
    # only the last is announced (a live reader can see nothing before the trim).
    snap = Snapshot(id="a", feed="f", url="https://x.example/a", title="v0")
    events = [{"kind": "created", "story": {"id": "a", "n": n}} for n in range(5)]
    entries = await store.append_version(snap, "h0", 0, events, [story_channel("a")])
    w.versions["a"] = 1
    await bus.publish(entries[-1:])
    with pytest.raises(HistoryLost) as lost:
        await asyncio.wait_for(sub.__anext__(), DEADLINE)
    assert lost.value.position == 5
    await bus.publish(await w.append("a"))
    assert await collect(sub, 6) == [6]
