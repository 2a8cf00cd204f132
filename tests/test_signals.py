"""Signals between processes (liveupdates.backends): the contract on every backend, and a worker
that missed notices while Redis was away still converging on the feed list."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from liveupdates.backends import Backends, Signal, SignalKind, Signals, open_url
from liveupdates.backends.redis import RedisSignals
from liveupdates.backends.sqlite import LocalSignals
from liveupdates.models import FeedConfig
from liveupdates.settings import Settings
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until
from tests.test_bus_redis import Proxy
from workers.main import running_poller

SETTINGS = Settings(
    poll_min_interval=0.1,
    poll_jitter=0.0,
    fetch_allow_networks=(ALLOW_LOOPBACK,),
)


@pytest.fixture(params=["local", "redis"])
async def signals(request: pytest.FixtureRequest) -> AsyncIterator[Signals]:
    if request.param == "local":
        yield LocalSignals()
        return
    made = RedisSignals(
        request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    )
    try:
        yield made
    finally:
        await made.close()


async def next_signal(inbox: AsyncIterator[Signal]) -> Signal:
    return await asyncio.wait_for(anext(inbox), 5)


async def test_signals_contract_every_listener_hears_each_notice(signals: Signals) -> None:
    async with signals.listen() as one, signals.listen() as two:
        await signals.send(Signal(SignalKind.POLL, "harbour"))
        await signals.send(Signal(SignalKind.FEEDS))
        for inbox in (one, two):
            assert await next_signal(inbox) == Signal(SignalKind.POLL, "harbour")
            assert await next_signal(inbox) == Signal(SignalKind.FEEDS)
    # After the block nothing is delivered to it (and sending does not fail).
    await signals.send(Signal(SignalKind.FEEDS))


async def test_signals_contract_a_listener_hears_only_what_came_after_it(signals: Signals) -> None:
    await signals.send(Signal(SignalKind.POLLED, "before"))
    async with signals.listen() as inbox:
        await signals.send(Signal(SignalKind.POLLED, "after"))
        assert await next_signal(inbox) == Signal(SignalKind.POLLED, "after")


def test_an_unknown_signal_is_ignored() -> None:
    assert Signal.decode("reindex everything") is None
    assert Signal.decode("poll harbour") == Signal(SignalKind.POLL, "harbour")


async def test_a_worker_that_missed_notices_converges_when_redis_returns(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, feed_server: FeedServer
) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = Proxy(port)
    await proxy.start()
    feed_server.set("/a.xml", rss([bridge_story()]))
    ops = open_url(redis_url, prefix=redis_prefix)
    shared = open_url(redis_url, prefix=redis_prefix)
    # The worker hears notices through the proxy; its store and claims reach Redis directly.
    worker: Backends = dataclasses.replace(
        shared,
        signals=RedisSignals(f"redis://127.0.0.1:{proxy.port}/0", redis_prefix, backoff_max=0.3),
    )
    try:
        async with running_poller(SETTINGS, worker) as scheduler:
            assert scheduler.job_ids() == set()
            await proxy.cut()  # Redis "restarts" for this worker
            await ops.store.upsert_feed(
                FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=0.2)
            )
            await ops.signals.send(Signal(SignalKind.FEEDS))  # nobody hears it
            await proxy.start()  # same port again
            await until(lambda: feed_server.count("/a.xml") >= 2)
    finally:
        await proxy.cut()
        await worker.signals.close()
        await shared.close()
        await ops.close()
