"""The hub core without a server: Hub.join and the fan-out over plain queued connections.

QueuedConnection is the transport-independent half of every connection, so these tests also show
that the fan-out does not care what carries the frames.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from liveupdates.bus import InMemoryBus
from liveupdates.hub.connection import QueuedConnection
from liveupdates.hub.core import Hub
from liveupdates.hub.fanout import readers_per_frame
from liveupdates.models import LogEntry, Snapshot, story_channel
from liveupdates.settings import Settings
from liveupdates.store.sqlite import SQLiteStore

DEADLINE = 10.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    store = SQLiteStore(tmp_path / "fanout.sqlite3")
    bus = InMemoryBus(store)
    settings = dataclasses.replace(Settings(), hub_send_queue=1000)
    yield Hub(settings, store, bus)
    await bus.close()
    await store.close()


async def publish(hub: Hub, story: str) -> list[LogEntry]:
    latest = await hub.store.latest(story)
    version = latest.version if latest else 0
    snap = Snapshot(id=story, feed="f", url=f"https://x.example/{story}", title=f"v{version + 1}")
    entries = await hub.store.append_version(
        snap, f"h{version + 1}", version, [{"v": version + 1}], [story_channel(story)]
    )
    await hub.bus.publish(entries)
    return entries


async def read_updates(conn: QueuedConnection, upto: int) -> list[int]:
    seqs: list[int] = []

    async def run() -> None:
        while not seqs or seqs[-1] < upto:
            batch = await conn.next_batch(100)
            assert batch is not None, f"closed: {conn.close_code}"
            for text in batch:
                message = json.loads(text)
                if message["type"] == "update":
                    seqs.append(message["seq"])

    await asyncio.wait_for(run(), DEADLINE)
    return seqs


async def test_joining_while_updates_land_misses_and_repeats_nothing(hub: Hub) -> None:
    await publish(hub, "a")
    total = 60
    conns = [QueuedConnection(1000) for _ in range(30)]

    async def publisher() -> None:
        for _ in range(total - 1):
            await publish(hub, "a")
            await asyncio.sleep(0)

    async def joiner(i: int, conn: QueuedConnection) -> None:
        for _ in range(i % 5):
            await asyncio.sleep(0.002)  # spread the joins across the publishing
        await hub.join(conn, "story:a", 0, None)

    await asyncio.gather(publisher(), *(joiner(i, c) for i, c in enumerate(conns)))
    for conn in conns:
        assert await read_updates(conn, total) == list(range(1, total + 1))


async def test_overflowing_connection_is_closed_4008_and_others_unaffected(hub: Hub) -> None:
    await publish(hub, "a")
    slow, fast = QueuedConnection(3), QueuedConnection(100)
    await hub.join(slow, "story:a", None, None)
    await hub.join(fast, "story:a", None, None)
    await slow.next_batch(10)  # takes `subscribed`, then reads nothing more
    for _ in range(5):
        await publish(hub, "a")
    assert await read_updates(fast, 6) == [2, 3, 4, 5, 6]
    assert slow.close_code == 4008
    assert slow.send_text("late") is False
    assert await slow.next_batch(10) is None


async def test_frames_are_encoded_once_per_channel(hub: Hub) -> None:
    await publish(hub, "a")
    conns = [QueuedConnection(10) for _ in range(3)]
    for conn in conns:
        await hub.join(conn, "story:a", None, None)
        await conn.next_batch(10)
    await publish(hub, "a")
    frames = [(await c.next_batch(10) or [None])[0] for c in conns]
    assert frames[0] is not None
    assert all(f is frames[0] for f in frames)  # the very same str object


async def test_shutdown_closes_everyone_with_1012(hub: Hub) -> None:
    await publish(hub, "a")
    conn = QueuedConnection(10)
    hub.connections.add(conn)
    await hub.join(conn, "story:a", None, None)
    conn._mark_finished()  # no transport to flush
    await hub.shutdown()
    assert conn.close_code == 1012
    assert hub.fanout.channels() == []


def test_each_update_counts_the_readers_that_got_it() -> None:
    """The per-update send metric is exact: 2 readers took a whole run of 3 frames, one took only
    the first (then overflowed), one catching up took frames 1 and 2 one by one."""
    prefix = [0, 1, 0, 2]  # prefix[k]: readers that took the first k frames in one write
    each = [0, 1, 1]
    assert readers_per_frame(prefix, each) == [3, 3, 3]
    assert readers_per_frame([0, 1, 0, 2], [0, 0, 0]) == [3, 2, 2]
    assert readers_per_frame([5, 0], [0]) == [0]  # nobody could take it
