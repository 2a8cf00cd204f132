"""The pipeline end to end: a feed on a loopback server, edited between polls, into stored events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from liveupdates.diff import apply
from liveupdates.feeds.fetch import Fetcher
from liveupdates.ingest import Ingestor
from liveupdates.models import FeedConfig, LogEntry
from liveupdates.store.sqlite import SQLiteStore
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import (
    BRIDGE,
    STORM_WATCH,
    bridge_story,
    rss,
    storm_watch_entry,
    storm_watch_story,
)

PATH = "/gazette.xml"


@pytest.fixture
async def pipeline(tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Pipeline]:
    store = SQLiteStore(tmp_path / "lu.sqlite3")
    fetcher = Fetcher(total_timeout=5.0, allow_networks=[ALLOW_LOOPBACK])
    published: list[LogEntry] = []

    async def publish(entries: list[LogEntry]) -> None:
        published.extend(entries)

    ingestor = Ingestor(store, fetcher, publish=publish)
    feed = FeedConfig(id="gazette", url=feed_server.url(PATH), interval_seconds=5)
    await store.upsert_feed(feed)
    yield Pipeline(ingestor, feed, feed_server, published)
    await fetcher.aclose()
    await store.close()


class Pipeline:
    def __init__(
        self, ingestor: Ingestor, feed: FeedConfig, server: FeedServer, published: list[LogEntry]
    ) -> None:
        self.ingestor = ingestor
        self.store = ingestor.store
        self.feed = feed
        self.server = server
        self.published = published

    async def poll(self, body: bytes, **behaviours: object) -> list[dict]:
        self.server.set(PATH, body, **behaviours)
        report = await self.ingestor.poll(self.feed)
        assert report.outcome.status != "error", report.outcome.error
        return report.events


async def test_new_story_then_edits_make_exact_diffs(pipeline: Pipeline) -> None:
    [created] = await pipeline.poll(rss([bridge_story()]))
    assert created["kind"] == "created"
    assert created["story"]["version"] == 1
    story_id = created["story"]["id"]

    # A paragraph inserted in the middle.
    added = "Traffic wardens will direct vehicles at the west approach until the lights are fixed."
    middle = [*BRIDGE[:2], added, *BRIDGE[2:]]
    [event] = await pipeline.poll(rss([bridge_story(paragraphs=middle)]))
    assert event["kind"] == "updated"
    [hunk] = event["diff"]["paragraphs"]
    assert (hunk["op"], hunk["new"], hunk["new_start"]) == ("insert", [added], 2)
    assert "1 paragraph added" in event["summary"]

    # The headline corrected: a field change and nothing else.
    fixed = "Saltmarsh Bridge reopens after twelve weeks"
    [event] = await pipeline.poll(rss([bridge_story(paragraphs=middle, title=fixed)]))
    title = event["diff"]["fields"]["title"]
    assert (title["old"], title["new"]) == ("Saltmarsh Bridge reopens after eleven weeks", fixed)
    assert [r for r in title["words"] if r["op"] != "equal"] == [
        {"op": "replace", "old": "eleven", "new": "twelve"}
    ]
    assert event["diff"]["paragraphs"] == []

    # One word changed in one paragraph: one small replace hunk.
    edited = list(middle)
    edited[3] = edited[3].replace("40 percent", "45 percent")
    [event] = await pipeline.poll(rss([bridge_story(paragraphs=edited, title=fixed)]))
    [hunk] = event["diff"]["paragraphs"]
    assert hunk["op"] == "replace"
    assert (hunk["old"], hunk["new"]) == ([middle[3]], [edited[3]])

    # Appended at the end.
    appended = [*edited, "This story has been updated."]
    [event] = await pipeline.poll(rss([bridge_story(paragraphs=appended, title=fixed)]))
    assert event["diff"]["paragraphs"][0]["new"] == ["This story has been updated."]
    assert event["story"]["version"] == 5

    # Every stored version is reachable by applying the logged diffs in order.
    log = await pipeline.store.read_log(f"story:{story_id}", 0, 100)
    assert [e.seq for e in log] == [1, 2, 3, 4, 5]
    current = (await pipeline.store.get_version(story_id, 1)).snapshot
    for entry in log[1:]:
        current = apply(current, entry.event["diff"])
    assert current == (await pipeline.store.latest(story_id)).snapshot


async def test_a_live_blog_update_carries_only_its_new_paragraph(pipeline: Pipeline) -> None:
    # The items have content:encoded and no description: the story has no summary to repeat.
    await pipeline.poll(rss([storm_watch_story(3)]))
    [event] = await pipeline.poll(rss([storm_watch_story(4)]))
    assert event["diff"]["fields"] == {}
    [hunk] = event["diff"]["paragraphs"]
    assert (hunk["op"], hunk["old"], hunk["new"]) == ("insert", [], [storm_watch_entry(4)])
    frame = json.dumps(event)
    assert all(old not in frame for old in [*STORM_WATCH, storm_watch_entry(3)])
    latest = await pipeline.store.latest(event["story"]["id"])
    assert latest.snapshot.summary == ""


async def test_cosmetic_churn_is_not_an_update(pipeline: Pipeline) -> None:
    await pipeline.poll(rss([bridge_story()]))
    churned = bridge_story(
        extra_markup=True,
        link="https://GAZETTE.example/news/saltmarsh-bridge-reopens?utm_source=rss#top",
        pub_date="Wed, 25 Nov 2026 09:30:00 GMT",
    )
    assert await pipeline.poll(rss([churned])) == []
    assert len(pipeline.published) == 2  # the created event, on the story and the feed channel


async def test_removed_entry_and_rewritten_guid_make_no_events(pipeline: Pipeline) -> None:
    [created] = await pipeline.poll(rss([bridge_story()]))
    # The entry leaves the feed: nothing to tell readers.
    assert await pipeline.poll(rss([])) == []
    # It comes back with a new guid but the same link: the same story, unchanged.
    assert await pipeline.poll(rss([bridge_story(guid="cms-v2-99812")])) == []
    # ...and when it then changes, the update lands on the original story.
    changed = bridge_story(guid="cms-v2-99812", title="Saltmarsh Bridge reopens to traffic")
    [event] = await pipeline.poll(rss([changed]))
    assert event["story"]["id"] == created["story"]["id"]
    assert event["story"]["version"] == 2


async def test_flip_flopping_caches_do_not_spam(pipeline: Pipeline) -> None:
    a = bridge_story()
    b = bridge_story(title="Saltmarsh Bridge reopens after repairs")
    await pipeline.poll(rss([a]))
    assert len(await pipeline.poll(rss([b]))) == 1
    # An out-of-step cache serves the old text again, then the new: no further events.
    assert await pipeline.poll(rss([a])) == []
    assert await pipeline.poll(rss([b])) == []
    assert await pipeline.poll(rss([a])) == []


async def test_not_modified_costs_nothing_and_errors_are_recorded(pipeline: Pipeline) -> None:
    await pipeline.poll(rss([bridge_story()]), etag=True)
    report = await pipeline.ingestor.poll(pipeline.feed)
    assert report.outcome.status == "not_modified"
    assert pipeline.server.requests(PATH)[-1].headers.get("if-none-match")

    pipeline.server.set(PATH, b"<rss><channel><item><title>broken", etag=False)
    pipeline.server.set("/nothing.xml", b"this is not a feed at all")
    broken = FeedConfig(id="gazette", url=pipeline.server.url("/nothing.xml"))
    report = await pipeline.ingestor.poll(broken)
    assert report.outcome.status == "error"
    health = await pipeline.store.feed_health("gazette")
    assert health is not None
    assert health.fetch.consecutive_errors == 1
    assert health.last_error
    # A good poll afterwards resets the streak.
    await pipeline.poll(rss([bridge_story()]))
    health = await pipeline.store.feed_health("gazette")
    assert health.fetch.consecutive_errors == 0


async def test_an_unchanged_304_is_written_to_the_feeds_health_at_most_once_a_minute(
    pipeline: Pipeline,
) -> None:
    await pipeline.poll(rss([bridge_story()]), etag=True)
    first = await pipeline.ingestor.poll(pipeline.feed)
    second = await pipeline.ingestor.poll(pipeline.feed)
    assert first.outcome.status == second.outcome.status == "not_modified"
    health = await pipeline.store.feed_health("gazette")
    assert health is not None and health.last_poll == first.outcome
    # Anything else is written at once: a change of the feed, an error.
    pipeline.server.set(PATH, b"", status=503)
    failed = await pipeline.ingestor.poll(pipeline.feed)
    health = await pipeline.store.feed_health("gazette")
    assert health is not None and health.last_poll == failed.outcome


async def test_a_broken_feed_stays_an_error_even_when_the_server_says_304(
    pipeline: Pipeline,
) -> None:
    pipeline.server.set(PATH, b"<html><body>Maintenance</body></html>", etag=True)
    for polls in (1, 2):
        report = await pipeline.ingestor.poll(pipeline.feed)
        assert report.outcome.status == "error"
        assert report.outcome.error and report.outcome.error.startswith("not a feed")
        health = await pipeline.store.feed_health("gazette")
        assert health is not None and health.fetch.consecutive_errors == polls
    # The second request carried no validator, so the server could not answer 304.
    assert "if-none-match" not in pipeline.server.requests(PATH)[-1].headers


class CountingStore:
    """Delegates to a store, recording every call by name (and failing appends when told to)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.calls: list[str] = []
        self.fail_appends = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            with_state = name == "record_poll" and (args[1:2] or [None])[0] is not None
            self.calls.append(f"{name}+state" if with_state else name)
            if name == "append_version" and self.fail_appends:
                raise RuntimeError("store outage")
            return await target(*args, **kwargs)

        return call


@pytest.fixture
async def counted(pipeline: Pipeline) -> CountingStore:
    counting = CountingStore(pipeline.store)  # type: ignore[arg-type]
    pipeline.ingestor.store = counting  # type: ignore[assignment]
    return counting


async def test_an_unchanged_feed_is_one_store_read_and_a_304_one_write(
    pipeline: Pipeline, counted: CountingStore
) -> None:
    other = bridge_story(guid="harbour-gazette-7", link="https://gazette.example/news/other")
    assert len(await pipeline.poll(rss([bridge_story(), other]))) == 2
    # The same text again with a 200: one read for the whole feed, no lookups per story.
    counted.calls.clear()
    assert await pipeline.poll(rss([bridge_story(), other])) == []
    assert counted.calls == ["get_fetch_state", "latest_hashes", "record_poll"]
    # One story changed: only that one goes through identity, compare and append, and its
    # identity, latest version and the flip-flop check's hashes are one read.
    counted.calls.clear()
    edited = other.with_(title="Another story, edited")
    [event] = await pipeline.poll(rss([bridge_story(), edited]), etag=True)
    assert event["story"]["version"] == 2
    assert counted.calls == [
        "get_fetch_state",
        "latest_hashes",
        "story_context",
        "append_version",
        "record_poll+state",  # the new etag, written with the outcome
    ]
    # A 304 leaves the fetch state as it is: the outcome is its only write.
    counted.calls.clear()
    report = await pipeline.ingestor.poll(pipeline.feed)
    assert report.outcome.status == "not_modified" and report.consecutive_errors == 0
    assert counted.calls == ["get_fetch_state", "record_poll"]


async def test_an_entry_twice_in_one_feed_is_compared_with_what_the_poll_wrote(
    pipeline: Pipeline, counted: CountingStore
) -> None:
    pipeline.ingestor.flipflop_window = 0
    a = bridge_story()
    b = bridge_story(title="Saltmarsh Bridge reopens after repairs")
    await pipeline.poll(rss([a]))
    # b then a under the same guid: b is a change, and a is then a change back from b.
    events = await pipeline.poll(rss([b, a]))
    assert [e["story"]["version"] for e in events] == [2, 3]


async def test_a_poll_that_fails_half_way_keeps_the_old_validators(
    pipeline: Pipeline, counted: CountingStore
) -> None:
    await pipeline.poll(rss([bridge_story()]), etag=True)
    before = await pipeline.store.get_fetch_state("gazette")
    edited = bridge_story(title="Saltmarsh Bridge reopens to traffic")
    pipeline.server.set(PATH, rss([edited]), etag=True)
    counted.fail_appends = True
    with pytest.raises(RuntimeError, match="store outage"):
        await pipeline.ingestor.poll(pipeline.feed)
    assert await pipeline.store.get_fetch_state("gazette") == before
    # So the next poll fetches the change again rather than being told 304.
    counted.fail_appends = False
    [event] = await pipeline.poll(rss([edited]), etag=True)
    assert event["story"]["version"] == 2


async def test_entries_whose_bytes_did_not_change_are_not_read_again(
    pipeline: Pipeline, counted: CountingStore
) -> None:
    other = bridge_story(guid="harbour-gazette-7", link="https://gazette.example/news/other")
    await pipeline.poll(rss([bridge_story(), other]))
    edited = other.with_(title="Another story, edited")
    pipeline.server.set(PATH, rss([bridge_story(), edited]))
    counted.calls.clear()
    report = await pipeline.ingestor.poll(pipeline.feed)
    # The bridge story came back byte for byte: taken as it was read last time, and checked
    # against the store only in the one batched read.
    assert report.reused == 1 and report.outcome.entries == 2
    [event] = report.events
    assert event["story"]["title"] == "Another story, edited"
    assert counted.calls.count("latest_hashes") == 1 and counted.calls.count("story_context") == 1
    # A fresh Ingestor (nothing remembered) stores the same: nothing new to publish.
    fresh = Ingestor(pipeline.store, pipeline.ingestor.fetcher)
    again = await fresh.poll(pipeline.feed)
    assert again.reused == 0 and again.events == []
