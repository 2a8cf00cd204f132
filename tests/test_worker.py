"""The scheduled poller: feeds polled on their intervals, failures isolated, changes acting live."""

from __future__ import annotations

from pathlib import Path

from liveupdates.backends import Backends, Signal, SignalKind, open_url
from liveupdates.models import FeedConfig, PollOutcome
from liveupdates.settings import Settings
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until
from workers.main import running_poller

SETTINGS = Settings(poll_min_interval=0.1, poll_jitter=0.0, fetch_allow_networks=(ALLOW_LOOPBACK,))


async def changed(backends: Backends, feed: FeedConfig) -> None:
    """What the admin API does on a change: store it, then tell the schedulers."""
    await backends.store.upsert_feed(feed)
    await backends.signals.send(Signal(SignalKind.FEEDS))


async def test_feeds_polled_independently_and_failures_isolated(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    backends = open_url(f"sqlite://{tmp_path}/lu.sqlite3")
    store = backends.store
    feed_server.set("/good.xml", rss([bridge_story()]))
    feed_server.set("/slow.xml", rss([bridge_story()]), delay=30)
    feed_server.set("/broken.xml", b"", status=500)
    await store.upsert_feed(
        FeedConfig(id="good", url=feed_server.url("/good.xml"), interval_seconds=0.2)
    )
    await store.upsert_feed(
        FeedConfig(id="slow", url=feed_server.url("/slow.xml"), interval_seconds=0.2)
    )
    await store.upsert_feed(
        FeedConfig(id="broken", url=feed_server.url("/broken.xml"), interval_seconds=0.2)
    )
    await store.upsert_feed(
        FeedConfig(
            id="paused", url=feed_server.url("/good.xml?p"), interval_seconds=0.2, paused=True
        )
    )
    async with running_poller(SETTINGS, backends):
        # The good feed keeps being polled while another hangs and a third fails.
        await until(lambda: feed_server.count("/good.xml") >= 4)
        await until(lambda: feed_server.count("/broken.xml") >= 2)
        health = await store.feed_health("broken")
        assert health is not None and health.fetch.consecutive_errors >= 2
        assert "500" in (health.last_error or "")
        assert feed_server.count("/slow.xml") == 1  # still waiting on its first answer
    assert [e.seq for e in await store.read_log("feed:good", 0, 10)] == [1]
    await backends.close()


async def test_interval_pause_and_new_feed_act_without_restart(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    backends = open_url(f"sqlite://{tmp_path}/lu.sqlite3")
    feed_server.set("/a.xml", rss([bridge_story()]))
    feed = FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=3600)
    await backends.store.upsert_feed(feed)
    async with running_poller(SETTINGS, backends) as scheduler:
        await until(lambda: feed_server.count("/a.xml") == 1)
        # An hour away; ops make it hot: the next poll comes within the new interval.
        feed.interval_seconds = 0.2
        await changed(backends, feed)
        await until(lambda: feed_server.count("/a.xml") >= 3)
        feed.paused = True
        await changed(backends, feed)
        await until(lambda: "a" not in scheduler.job_ids())
        paused_at = feed_server.count("/a.xml")

        feed_server.set("/b.xml", rss([bridge_story(guid="b-1")]))
        await changed(
            backends, FeedConfig(id="b", url=feed_server.url("/b.xml"), interval_seconds=0.2)
        )
        await until(lambda: feed_server.count("/b.xml") >= 2)
        # "a" stayed paused while "b" was picked up and polled twice.
        assert feed_server.count("/a.xml") <= paused_at + 1
    await backends.close()


async def test_the_feed_list_is_read_on_notice_not_on_a_timer(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    backends = open_url(f"sqlite://{tmp_path}/lu.sqlite3")
    feed_server.set("/a.xml", rss([bridge_story()]))
    feed_server.set("/b.xml", rss([bridge_story(guid="b-1")]))
    await backends.store.upsert_feed(
        FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=0.2)
    )
    async with running_poller(SETTINGS, backends) as scheduler:
        await until(lambda: feed_server.count("/a.xml") >= 3)
        # Written behind the schedulers' back: a few polls of "a" later, still unknown.
        await backends.store.upsert_feed(
            FeedConfig(id="b", url=feed_server.url("/b.xml"), interval_seconds=0.2)
        )
        seen = feed_server.count("/a.xml")
        await until(lambda: feed_server.count("/a.xml") >= seen + 3)
        assert "b" not in scheduler.job_ids() and feed_server.count("/b.xml") == 0
        # The notice makes it act.
        await backends.signals.send(Signal(SignalKind.FEEDS))
        await until(lambda: feed_server.count("/b.xml") >= 1, timeout=1.0)
    await backends.close()


async def test_a_resumed_feed_shows_its_first_unchanged_poll_in_its_health_at_once(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    backends = open_url(f"sqlite://{tmp_path}/lu.sqlite3")
    feed_server.set("/a.xml", rss([bridge_story()]), etag=True)
    feed = FeedConfig(id="a", url=feed_server.url("/a.xml"), interval_seconds=3600)
    await backends.store.upsert_feed(feed)

    async def last_poll() -> PollOutcome | None:
        health = await backends.store.feed_health("a")
        return health.last_poll if health else None

    async with running_poller(SETTINGS, backends) as scheduler:
        await until(lambda: feed_server.count("/a.xml") == 1)
        unchanged = await scheduler.poll_now("a")
        assert unchanged is not None and unchanged.outcome.status == "not_modified"
        assert await last_poll() == unchanged.outcome
        feed.paused = True
        await changed(backends, feed)
        await until(lambda: "a" not in scheduler.job_ids())
        feed.paused = False
        await changed(backends, feed)
        await until(lambda: feed_server.count("/a.xml") == 3)

        async def resumed_written() -> bool:
            poll = await last_poll()
            return poll is not None and poll != unchanged.outcome and poll.status == "not_modified"

        # Within a minute of the last written 304, but the feed starts over: written at once.
        await until(resumed_written, message="the resumed feed's first 304 was not written")
    await backends.close()
