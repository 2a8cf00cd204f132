"""Redis-only bus behaviour: one reader per process, reconnecting without loss, honest epochs.

What every bus must do is in test_bus_contract.py; this file covers what only RedisBus has.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from liveupdates.bus import HistoryLost
from liveupdates.bus.redis import RedisBus
from liveupdates.models import Snapshot, feed_channel, story_channel
from liveupdates.store.redis import RedisStore
from tests.test_bus_contract import DEADLINE, Writer, collect


@pytest.fixture
def store(redis_client: aioredis.Redis, redis_prefix: str) -> RedisStore:
    return RedisStore.from_client(redis_client, redis_prefix)


@pytest.fixture
async def bus(redis_client: aioredis.Redis, store: RedisStore) -> AsyncIterator[RedisBus]:
    b = RedisBus(redis_client, store, block_seconds=1.0, epoch_check_seconds=0.2, backoff_max=0.5)
    yield b
    await b.close()


async def reader_connections(redis_client: aioredis.Redis, bus: RedisBus) -> int:
    return sum(1 for c in await redis_client.client_list() if c.get("name") == bus.reader_name)


async def test_one_reader_connection_for_many_channels_and_subscriptions(
    bus: RedisBus, store: RedisStore, redis_client: aioredis.Redis
) -> None:
    w = Writer(store)
    subs = [await bus.subscribe(story_channel(f"s{i % 10}")) for i in range(40)]
    for i in range(10):
        await w.append(f"s{i}")
    for sub in subs:
        assert await collect(sub, 1) == [1]
    assert sorted(bus.channels()) == sorted(story_channel(f"s{i}") for i in range(10))
    assert bus.subscriber_count(story_channel("s3")) == 4
    assert await reader_connections(redis_client, bus) == 1


async def test_a_story_followed_before_it_exists_gets_its_first_event(
    bus: RedisBus, store: RedisStore
) -> None:
    sub = await bus.subscribe(story_channel("unborn"))
    before = await bus.bounds(story_channel("unborn"))
    await Writer(store).append("unborn")
    assert await collect(sub, 1) == [1]
    assert (await bus.bounds(story_channel("unborn"))).epoch == before.epoch


class Proxy:
    """A TCP proxy to Redis that can be cut (connections dropped, new ones refused)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        tasks = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        self._pipes.update(tasks)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(*tasks)
        self._pipes.difference_update(tasks)
        for w in (writer, up_writer):
            w.close()


async def test_losing_redis_for_a_while_misses_nothing(
    redis_url: str, store: RedisStore, redis_client: aioredis.Redis
) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = Proxy(port)
    await proxy.start()
    # The reader goes through the proxy; the writer (the workers, in production) does not.
    bus = RedisBus(f"redis://127.0.0.1:{proxy.port}/0", store, block_seconds=0.5, backoff_max=0.3)
    w = Writer(store)
    try:
        sub = await bus.subscribe(story_channel("a"))
        await w.append("a")
        assert await collect(sub, 1) == [1]
        await proxy.cut()
        for _ in range(3):
            await w.append("a")  # written while this process cannot see Redis
        await proxy.start()  # same port again
        assert await collect(sub, 4) == [2, 3, 4]
        assert bus.reconnects >= 1
        await w.append("a")
        assert await collect(sub, 5) == [5]
    finally:
        await bus.close()
        await proxy.cut()


async def test_a_replaced_log_raises_history_lost_then_carries_on(
    bus: RedisBus, store: RedisStore
) -> None:
    w = Writer(store)
    sub = await bus.subscribe(story_channel("a"))
    for _ in range(3):
        await w.append("a")
    assert await collect(sub, 3) == [1, 2, 3]
    old = await bus.bounds(story_channel("a"))
    await store.forget_channel(story_channel("a"))
    # The new log starts again at seq 1, below where the reader stood: only the epoch tells.
    await w.append("a")
    with pytest.raises(HistoryLost) as lost:
        await asyncio.wait_for(sub.__anext__(), DEADLINE)
    new = await bus.bounds(story_channel("a"))
    assert new.epoch != old.epoch
    assert lost.value.position == new.last == 1
    await w.append("a")
    assert await collect(sub, 2) == [2]


async def test_a_replaced_log_that_outgrew_the_old_one_is_not_passed_off_as_its_sequel(
    bus: RedisBus, store: RedisStore
) -> None:
    w = Writer(store)
    sub = await bus.subscribe(feed_channel("f"))
    snap = Snapshot(id="x", feed="f", url="https://x.example/x", title="t")
    await store.append_version(snap, "h", 0, [{"n": 1}], [feed_channel("f")])
    assert await collect(sub, 1) == [1]
    await store.forget_channel(feed_channel("f"))
    # Two entries at once in the new log: seq 2 would look like the next entry of the old one.
    await store.append_version(
        Snapshot(id="y", feed="f", url="https://x.example/y", title="t"),
        "h",
        0,
        [{"n": 1}, {"n": 2}],
        [feed_channel("f")],
    )
    with pytest.raises(HistoryLost):
        await asyncio.wait_for(sub.__anext__(), DEADLINE)
    await w.append("z", feed="other")  # story:z and feed:other only: feed:f stays quiet
    await store.append_version(
        Snapshot(id="y", feed="f", url="https://x.example/y", title="t2"),
        "h2",
        1,
        [{"n": 3}],
        [feed_channel("f")],
    )
    assert await collect(sub, 3) == [3]
