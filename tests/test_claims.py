"""Worker coordination on Redis: each feed polled by one worker per interval, a dead worker's
feeds taken over, planned poll times true, and racing workers making one version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from liveupdates.backends import Claims, Grant, lease_for
from liveupdates.backends.redis import RedisClaims
from liveupdates.backends.sqlite import LocalClaims
from liveupdates.ingest import Ingestor, PollReport
from liveupdates.models import FeedConfig, StoredVersion, story_channel
from liveupdates.runtime import make_fetcher
from liveupdates.settings import Settings
from liveupdates.store.redis import RedisStore
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until
from workers.poller import FeedScheduler

SETTINGS = Settings(
    poll_min_interval=0.1,
    poll_jitter=0.0,
    fetch_total_timeout=2.0,
    fetch_allow_networks=(ALLOW_LOOPBACK,),
)


@pytest.fixture
async def stores(redis_url: str, redis_prefix: str) -> AsyncIterator[list[RedisStore]]:
    """One RedisStore (own connection pool) per simulated worker process."""
    opened = [RedisStore(redis_url, prefix=redis_prefix) for _ in range(3)]
    yield opened
    for store in opened:
        await store.close()


class Worker:
    """A FeedScheduler as `liveupdates worker` runs it, with its polls counted."""

    def __init__(self, store: RedisStore, lease: float) -> None:
        self.reports: list[PollReport] = []
        self.fetcher = make_fetcher(SETTINGS)
        self.scheduler = FeedScheduler(
            Ingestor(store, self.fetcher),
            jitter=0.0,
            min_interval=0.1,
            on_report=self.reports.append,
            claims=RedisClaims(store.client, store.prefix),
            lease_seconds=lease,
        )

    async def start(self) -> Worker:
        await self.scheduler.sync(await self.scheduler.ingestor.store.list_feeds())
        self.scheduler.start()
        return self

    def polls(self, feed_id: str) -> int:
        return sum(1 for r in self.reports if r.outcome.feed_id == feed_id)

    async def stop(self) -> None:
        """Stop like a killed process: no release, jobs simply gone."""
        self.scheduler.shutdown()
        await self.fetcher.aclose()


async def test_redis_claims_grant_one_holder_until_released_or_expired(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    a, b = RedisClaims(redis_client, redis_prefix), RedisClaims(redis_client, redis_prefix)
    assert await a.due("f") is None
    assert await a.claim("f", 0.3)
    assert not await b.claim("f", 0.3)  # held
    due = await b.due("f")
    assert due is not None and time.time() < due <= time.time() + 0.3
    await a.release("f", time.time() + 60)
    assert not await b.claim("f", 0.3)  # not due for a minute
    assert await b.claim("f", 0.3, force=True)  # ops: poll now
    await asyncio.sleep(0.35)  # the holder "died": its lease runs out (a real clock is the point)
    assert await a.claim("f", 0.3)
    await a.forget("f")
    assert await b.due("f") is None
    assert await b.claim("f", 0.3)


@pytest.fixture(params=["local", "redis"])
async def claims(request: pytest.FixtureRequest) -> AsyncIterator[Claims]:
    """The claims of every backend: one process's (local) and the shared ones (Redis)."""
    if request.param == "local":
        yield LocalClaims()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisClaims(client, request.getfixturevalue("redis_prefix"))
    finally:
        await client.aclose()


async def test_claims_contract_one_lease_at_a_time(claims: Claims) -> None:
    assert await claims.due("f") is None
    assert await claims.claim("f", 30) == Grant.GRANTED
    assert not await claims.claim("f", 30)  # held
    assert not await claims.claim("f", 30, force=True)  # not even "poll now" overlaps a poll
    due = await claims.due("f")
    assert due is not None and time.time() < due <= time.time() + 30
    await claims.release("f", 123.0)
    assert await claims.due("f") == 123.0
    assert await claims.claim("f", 30, force=True) == Grant.GRANTED
    await claims.forget("f")
    assert await claims.due("f") is None


async def test_claims_contract_a_request_is_granted_once_after_the_lease(claims: Claims) -> None:
    assert await claims.claim("f", 30)
    await claims.request("f")  # asked while a poll runs
    assert not await claims.claim("f", 30)  # the lease still wins
    await claims.release("f", time.time() + 3600)  # next due in an hour
    assert await claims.claim("f", 30) == Grant.REQUESTED  # ...but it was asked for
    await claims.release("f", time.time() + 3600)
    second = await claims.claim("f", 30, force=True)
    assert second == Grant.GRANTED  # the request was consumed by the first grant


async def test_claims_contract_hasten_moves_the_due_time_forward_only(claims: Claims) -> None:
    await claims.hasten("f", 500.0)
    assert await claims.due("f") == 500.0
    await claims.hasten("f", 900.0)
    assert await claims.due("f") == 500.0
    await claims.hasten("f", 200.0)
    assert await claims.due("f") == 200.0
    assert await claims.claim("f", 30)
    await claims.hasten("f", 100.0)  # an ops change during a poll
    assert not await claims.claim("f", 30)  # does not free the lease


async def test_shared_claims_refuse_a_feed_not_yet_due(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    claims = RedisClaims(redis_client, redis_prefix)
    await claims.release("f", time.time() + 60)
    assert not await claims.claim("f", 30)
    assert await claims.claim("f", 30, force=True)  # poll now


def test_lease_outlasts_the_fetch_deadline() -> None:
    assert lease_for(20.0) > 20.0


async def test_two_workers_poll_each_feed_once_per_interval_and_take_over_a_dead_one(
    stores: list[RedisStore], feed_server: FeedServer
) -> None:
    interval = 0.5
    feed_server.set("/a.xml", rss([bridge_story()]))
    feed_server.set("/b.xml", rss([bridge_story(guid="b-1")]))
    for name in ("a", "b"):
        await stores[0].upsert_feed(
            FeedConfig(id=name, url=feed_server.url(f"/{name}.xml"), interval_seconds=interval)
        )
    one = await Worker(stores[0], lease=1.0).start()
    two = await Worker(stores[1], lease=1.0).start()
    try:
        started = time.monotonic()
        await until(lambda: feed_server.count("/a.xml") >= 6 and feed_server.count("/b.xml") >= 6)
        elapsed = time.monotonic() - started
        for name in ("a", "b"):
            # One poll per interval between the two of them (plus the first, at once).
            assert feed_server.count(f"/{name}.xml") <= elapsed / interval + 2
            # Every request came from a poll one of them reported (a poll may still be ending).
            await until(
                lambda n=name: one.polls(n) + two.polls(n) == feed_server.count(f"/{n}.xml"), 2.0
            )

        # Whoever holds "a" dies; the survivor keeps polling both within about one lease.
        holder, survivor = (one, two) if one.polls("a") >= two.polls("a") else (two, one)
        await holder.stop()
        before = {name: survivor.polls(name) for name in ("a", "b")}
        await until(
            lambda: all(survivor.polls(n) >= before[n] + 3 for n in ("a", "b")), timeout=6.0
        )
    finally:
        await one.stop()
        await two.stop()


async def test_a_feed_held_by_a_worker_that_died_mid_poll_is_taken_after_the_lease(
    stores: list[RedisStore], feed_server: FeedServer
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    await stores[0].upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=0.2)
    )
    lease = 1.5
    # A worker claimed it and died before releasing.
    dead = RedisClaims(stores[2].client, stores[2].prefix)
    assert await dead.claim("a", lease)
    claimed_at = time.monotonic()
    due = await dead.due("a")
    worker = await Worker(stores[0], lease=lease).start()
    try:
        # Meanwhile the store shows when the feed will next be polled: when the lease ends.
        await worker.scheduler.flush_plans()
        health = await stores[0].feed_health("a")
        assert health is not None and health.next_poll_at and due is not None
        shown = datetime.fromisoformat(health.next_poll_at.replace("Z", "+00:00"))
        assert abs(shown.timestamp() - due) < 0.01
        await until(lambda: worker.polls("a") >= 1, timeout=lease + 3)
        assert time.monotonic() - claimed_at >= lease - 0.1  # not before the lease ran out
        await until(lambda: worker.polls("a") >= 3)
    finally:
        await worker.stop()


async def test_planned_poll_time_in_the_store_is_the_shared_due_time(
    stores: list[RedisStore], feed_server: FeedServer
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    await stores[0].upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=2.0, adaptive=False)
    )
    one = await Worker(stores[0], lease=5.0).start()
    two = await Worker(stores[1], lease=5.0).start()
    claims = RedisClaims(stores[2].client, stores[2].prefix)
    try:
        await until(lambda: len(one.reports) + len(two.reports) >= 1)
        await one.scheduler.flush_plans()
        await two.scheduler.flush_plans()

        async def shown_and_due() -> tuple[float, float]:
            health = await stores[2].feed_health("a")
            assert health is not None and health.next_poll_at
            shown = datetime.fromisoformat(health.next_poll_at.replace("Z", "+00:00"))
            due = await claims.due("a")
            assert due is not None
            return shown.timestamp(), due

        # Both workers settle on the holder's plan; compare once the writes have landed.
        async def settled() -> tuple[float, float] | None:
            shown, due = await shown_and_due()
            return (shown, due) if abs(shown - due) < 0.05 else None

        shown, due = await until(settled, timeout=5, interval=0.05)
        assert abs(shown - due) < 0.05
        assert time.time() < due <= time.time() + 2.1
    finally:
        await one.stop()
        await two.stop()


class RacingStore:
    """Delegates to a RedisStore; `latest` waits until both racers have read it."""

    def __init__(self, store: RedisStore, barrier: asyncio.Barrier) -> None:
        self._store = store
        self._barrier = barrier
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def latest(self, story_id: str) -> StoredVersion | None:
        found = await self._store.latest(story_id)
        if self.armed:
            await asyncio.wait_for(self._barrier.wait(), 5)
        return found


async def test_two_workers_racing_on_one_change_make_one_version(
    stores: list[RedisStore], feed_server: FeedServer
) -> None:
    story = bridge_story()
    feed_server.set("/a.xml", rss([story]))
    feed = FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=60)
    barrier = asyncio.Barrier(2)
    racers = [RacingStore(stores[0], barrier), RacingStore(stores[1], barrier)]
    fetchers = [make_fetcher(SETTINGS) for _ in racers]
    ingestors = [Ingestor(r, f) for r, f in zip(racers, fetchers, strict=True)]  # type: ignore[arg-type]
    try:
        first = await ingestors[0].poll(feed)
        assert first.outcome.events == 1
        story_id = first.events[0]["story"]["id"]

        feed_server.set("/a.xml", rss([story.with_(title="Saltmarsh Bridge reopens at last")]))
        for racer in racers:
            racer.armed = True  # both see version 1 before either writes
        reports = await asyncio.gather(*(i.poll(feed) for i in ingestors))
        assert sorted(r.outcome.events for r in reports) == [0, 1]
        latest = await stores[2].latest(story_id)
        assert latest is not None and latest.version == 2
        log = await stores[2].read_log(story_channel(story_id), 0, 10)
        assert [(e.seq, e.event["kind"]) for e in log] == [(1, "created"), (2, "updated")]
        assert len(await stores[2].read_log("feed:a", 0, 10)) == 2
    finally:
        for fetcher in fetchers:
            await fetcher.aclose()
