"""One way through: every poll of a feed (scheduled, "poll now", a pushed body) goes through the
process's scheduler and the feed's claim, never overlapping another poll of it, and plans the next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from liveupdates.backends import Backends, Signal, SignalKind, open_url
from liveupdates.feeds.identity import story_id
from liveupdates.ingest import PollReport
from liveupdates.models import FeedConfig, LogEntry, feed_channel
from liveupdates.ops.control import PollControl, UnknownFeed
from liveupdates.settings import Settings
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import bridge_story, rss, storm_watch_story
from tests.support.waiting import until
from workers.main import running_poller
from workers.poller import FeedScheduler

SETTINGS = Settings(
    poll_min_interval=0.1,
    poll_jitter=0.0,
    fetch_allow_networks=(ALLOW_LOOPBACK,),
    fetch_total_timeout=5.0,
)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Backends]:
    backends = open_url(f"sqlite://{tmp_path}/lu.sqlite3")
    yield backends
    await backends.close()


async def test_a_pushed_body_takes_the_poll_path_and_waits_for_a_running_poll(
    embedded: Backends, feed_server: FeedServer
) -> None:
    published: list[LogEntry] = []
    sub = await embedded.bus.subscribe(feed_channel("a"))
    feed_server.set("/a.xml", rss([bridge_story()]), delay=0.5)
    await embedded.store.upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=3600, adaptive=False)
    )
    async with running_poller(SETTINGS, embedded) as scheduler:
        await until(lambda: feed_server.count("/a.xml") == 1)  # the first poll is under way
        body = rss([bridge_story(title="Saltmarsh Bridge reopens at last")])
        report = await scheduler.ingest_pushed("a", body, {"content-type": "application/rss+xml"})
        # It waited for the poll: the poll's version is 1, the pushed change is version 2.
        assert report is not None and report.outcome.status == "ok"
        assert [e["kind"] for e in report.events] == ["updated"]
        async for batch in sub:
            published.extend(batch)
            if len(published) >= 2:
                break
        assert [e.event["kind"] for e in published] == ["created", "updated"]
        # A push plans the next poll like a poll does: an hour from now, not sooner.
        next_run = scheduler.next_run("a")
        assert next_run is not None and next_run.timestamp() > time.time() + 3000
        assert feed_server.count("/a.xml") == 1  # nothing was fetched for the push

        assert await scheduler.ingest_pushed("nope", body, {}) is None
        paused = FeedConfig(id="p", url=feed_server.url("/p.xml"), paused=True)
        await embedded.store.upsert_feed(paused)
        assert await scheduler.ingest_pushed("p", body, {}) is None
    await sub.close()


async def test_a_pushed_body_that_is_not_a_feed_is_an_error_outcome(
    embedded: Backends, feed_server: FeedServer
) -> None:
    await embedded.store.upsert_feed(FeedConfig(id="a", url=feed_server.url("/a.xml")))
    scheduler = FeedScheduler.for_process(SETTINGS, embedded)
    try:
        report = await scheduler.ingest_pushed("a", b"<html>not a feed</html>", {})
        assert report is not None and report.outcome.status == "error"
        health = await embedded.store.feed_health("a")
        assert health is not None and health.last_poll == report.outcome
    finally:
        await scheduler.aclose()


async def _held_poll(
    embedded: Backends, feed_server: FeedServer, body: bytes
) -> tuple[FeedScheduler, asyncio.Task[PollReport | None]]:
    """A scheduler whose first poll of feed "a" is under way (the feed server answers slowly):
    pushes for it now wait their turn."""
    feed_server.set("/a.xml", body, delay=0.5)
    feed = FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=3600)
    await embedded.store.upsert_feed(feed)
    scheduler = FeedScheduler.for_process(SETTINGS, embedded)
    polling = asyncio.create_task(scheduler.poll_now("a"))
    await until(lambda: feed_server.count("/a.xml") == 1)
    return scheduler, polling


async def test_a_worker_keeps_no_per_feed_lock_once_polls_end(
    embedded: Backends, feed_server: FeedServer
) -> None:
    """Feeds come and go for the life of a worker: the lock that keeps a feed's polls one at a
    time goes when its last poll ends, not with the process."""
    scheduler, polling = await _held_poll(embedded, feed_server, rss([bridge_story()]))
    try:
        waiting = asyncio.create_task(scheduler.poll_now("a"))  # its turn comes after the first
        assert (await polling) is not None and (await waiting) is not None
        assert feed_server.count("/a.xml") == 2
        feed_server.set("/b.xml", rss([bridge_story()]))
        for n in range(20):
            await embedded.store.upsert_feed(FeedConfig(id=f"b{n}", url=feed_server.url("/b.xml")))
            assert await scheduler.poll_now(f"b{n}") is not None
        assert scheduler._locks == {}
    finally:
        await scheduler.aclose()


async def test_a_burst_of_full_pushes_ingests_the_newest_once_and_answers_every_push(
    embedded: Backends, feed_server: FeedServer
) -> None:
    """Each push carries the whole feed: queued behind a running poll, the later ones take the
    place of the one waiting, and what is stored is the newest body, in one new version."""
    scheduler, polling = await _held_poll(embedded, feed_server, rss([storm_watch_story(1)]))
    feed = await embedded.store.get_feed("a")
    try:
        bodies = [rss([storm_watch_story(n), bridge_story()]) for n in (2, 3, 4)]
        pushes = [
            asyncio.create_task(scheduler.ingest_pushed("a", body, {}, feed=feed))
            for body in bodies
        ]
        reports = await asyncio.gather(*pushes)
        assert all(r is reports[0] for r in reports)  # one ingest answered all three
        report = reports[0]
        assert report is not None and report.outcome.status == "ok"
        assert sorted(e["kind"] for e in report.events) == ["created", "updated"]
        story = storm_watch_story(4)
        stored = await embedded.store.latest(story_id("a", story.guid, story.link))
        # The poll's version, then straight to the newest text: entry 4 is there with 2 and 3.
        assert stored is not None and stored.version == 2
        assert list(stored.snapshot.paragraphs) == story.paragraphs
        assert (await polling) is not None  # the poll went first
    finally:
        await scheduler.aclose()


async def test_pushes_that_name_other_entries_are_each_ingested(
    embedded: Backends, feed_server: FeedServer
) -> None:
    """A hub may send only what changed: a body that lacks an entry of the one waiting does not
    replace it, so no entry is lost."""
    scheduler, polling = await _held_poll(embedded, feed_server, rss([storm_watch_story(1)]))
    feed = await embedded.store.get_feed("a")
    try:
        first = rss([bridge_story()])
        ferry = bridge_story(
            guid="ferry-1",
            title="Ferry service ends on Friday",
            link="https://gazette.example/news/ferry-ends",
        )
        second = rss([ferry])
        reports = await asyncio.gather(
            scheduler.ingest_pushed("a", first, {}, feed=feed),
            scheduler.ingest_pushed("a", second, {}, feed=feed),
        )
        titles = [[e["story"]["title"] for e in r.events] for r in reports if r is not None]
        assert titles == [
            ["Saltmarsh Bridge reopens after eleven weeks"],
            ["Ferry service ends on Friday"],
        ]
        assert (await polling) is not None  # the poll went first
    finally:
        await scheduler.aclose()


async def test_poll_now_replans_the_next_poll(embedded: Backends, feed_server: FeedServer) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    await embedded.store.upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=600, adaptive=False)
    )
    async with running_poller(SETTINGS, embedded) as scheduler:
        await until(lambda: feed_server.count("/a.xml") == 1)
        await until(lambda: scheduler.next_run("a") is not None)
        first = scheduler.next_run("a")
        report = await scheduler.poll_now("a")
        assert report is not None and feed_server.count("/a.xml") == 2
        second = scheduler.next_run("a")
        assert first is not None and second is not None and second > first
        assert await scheduler.poll_now("nope") is None


async def test_poll_now_waits_for_another_workers_poll_of_the_feed(
    redis_url: str, redis_prefix: str, feed_server: FeedServer
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]), delay=0.5)
    one, two = open_url(redis_url, prefix=redis_prefix), open_url(redis_url, prefix=redis_prefix)
    await one.store.upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=3600)
    )
    polling = FeedScheduler.for_process(SETTINGS, one)
    asking = FeedScheduler.for_process(SETTINGS, two)
    try:
        running = asyncio.create_task(polling.poll_now("a"))
        await until(lambda: feed_server.count("/a.xml") == 1)
        report = await asking.poll_now("a")
        assert running.done()  # it waited for the other process's poll to end
        assert report is not None
        assert feed_server.count("/a.xml") == 2
    finally:
        await polling.aclose()
        await asking.aclose()
        await one.close()
        await two.close()


async def test_a_web_process_hands_poll_now_to_a_worker_and_gets_its_outcome(
    redis_url: str, redis_prefix: str, feed_server: FeedServer
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    feed_server.set("/p.xml", rss([bridge_story(guid="p-1")]))
    web, worker = open_url(redis_url, prefix=redis_prefix), open_url(redis_url, prefix=redis_prefix)
    await web.store.upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=3600)
    )
    await web.store.upsert_feed(
        FeedConfig(id="p", url=feed_server.url("/p.xml"), interval_seconds=3600, paused=True)
    )
    control = PollControl(web, wait_seconds=0.5)
    try:
        # No worker: the request stays for one, and the answer says the outcome is not known.
        assert await control.poll_now("a") is None
        with pytest.raises(UnknownFeed):
            await control.poll_now("nope")

        control.wait_seconds = 10.0
        two = open_url(redis_url, prefix=redis_prefix)
        async with running_poller(SETTINGS, worker), running_poller(SETTINGS, two):
            await until(lambda: feed_server.count("/a.xml") >= 1)  # first poll, or the request
            polls = feed_server.count("/a.xml")
            outcome = await control.poll_now("a")
            assert outcome is not None and outcome.status == "ok"
            # Two workers heard the request: one of them polled.
            assert feed_server.count("/a.xml") == polls + 1
            # A paused feed is polled too, once.
            outcome = await control.poll_now("p")
            assert outcome is not None and outcome.feed_id == "p"
            assert feed_server.count("/p.xml") == 1
            await web.signals.send(Signal(SignalKind.FEEDS))  # harmless, changes nothing
        await two.close()
    finally:
        await web.close()
        await worker.close()
