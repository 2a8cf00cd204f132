"""The Store contract: one suite, written only against the Protocol, run on every backend.

To add a backend: write a small `Backend` class below (how to open a store on shared data, how to
lose a channel's log) and add it to BACKENDS. Every test here then runs against it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from liveupdates.backends import open_url
from liveupdates.models import (
    FeedConfig,
    FetchState,
    LogEntry,
    PollOutcome,
    Snapshot,
    feed_channel,
    story_channel,
)
from liveupdates.store.base import LogBounds, Store, StoryContext, VersionConflict
from liveupdates.store.redis import RedisStore
from liveupdates.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent

# -- backends --------------------------------------------------------------------------------------


class Backend(Protocol):
    target: str  # the backends URL another process opens
    prefix: str  # open_url's `prefix` (only Redis uses it)

    def open(self, *, log_retention: int | None = None) -> Store:
        """A new store object on this backend's shared data (a second process would see the same)."""
        ...

    async def lose_channel(self, channel: str) -> None:
        """Make the channel's log disappear as a crash/restart/operator would (stores closed)."""
        ...


class SQLiteBackend:
    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.path = tmp_path / "nested" / "dir" / "store.sqlite3"
        self.target, self.prefix = f"sqlite://{self.path}", ""

    def open(self, *, log_retention: int | None = None) -> Store:
        return SQLiteStore(self.path, log_retention=log_retention)

    async def lose_channel(self, channel: str) -> None:
        # SQLite has one epoch per file: losing a channel means losing the database file.
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                os.remove(p)


class RedisBackend:
    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        # Looked up lazily so SQLite-only runs (-k sqlite) never need a Redis.
        self.url: str = request.getfixturevalue("redis_url")
        self.prefix: str = request.getfixturevalue("redis_prefix")
        self.target = self.url

    def open(self, *, log_retention: int | None = None) -> Store:
        return RedisStore(self.url, prefix=self.prefix, log_retention=log_retention)

    async def lose_channel(self, channel: str) -> None:
        store = RedisStore(self.url, prefix=self.prefix)
        try:
            await store.forget_channel(channel)
        finally:
            await store.close()


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "sqlite": SQLiteBackend,
    "redis": RedisBackend,
}


class Opened:
    """Opens stores on one backend and closes whatever is still open at teardown."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.stores: list[Store] = []

    def open(self, *, log_retention: int | None = None) -> Store:
        store = self.backend.open(log_retention=log_retention)
        self.stores.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.stores:
            await store.close()
        self.stores.clear()


@pytest.fixture(params=list(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    opened = Opened(BACKENDS[request.param](request, tmp_path))
    yield opened
    await opened.close_all()


@pytest.fixture
def store(backend: Opened) -> Store:
    return backend.open()


# -- data ------------------------------------------------------------------------------------------


def snap(story: str, feed: str = "harbour-gazette", **changes: Any) -> Snapshot:
    base = Snapshot(
        id=story,
        feed=feed,
        url=f"https://harbour.example/news/{story}",
        title=f"Ferry timetable change ({story})",
        summary="The island ferry moves to a winter timetable.",
        authors=("Ada Quay",),
        published="2031-02-03T08:00:00Z",
        updated="2031-02-03T08:05:00Z",
        paragraphs=("First paragraph.", "Second paragraph."),
        guid=f"urn:harbour:{story}",
    )
    return replace(base, **changes)


def event(kind: str, story: str, n: int) -> dict[str, Any]:
    return {"type": kind, "story_id": story, "n": n, "note": "naïve café ✓", "tags": []}


def chans(s: Snapshot) -> list[str]:
    return [story_channel(s.id), feed_channel(s.feed)]


async def add(store: Store, s: Snapshot, expected: int, n: int = 1) -> list[LogEntry]:
    kind = "created" if expected == 0 else "updated"
    events = [event(kind, s.id, i) for i in range(n)]
    return await store.append_version(s, f"hash-{s.id}-{expected + 1}", expected, events, chans(s))


async def append_with_retry(store: Store, story: str, event: dict[str, Any]) -> list[LogEntry]:
    """What a poller does: read the latest, append on top, re-read on conflict."""
    while True:
        latest = await store.latest(story)
        expected = latest.version if latest else 0
        s = snap(story, title=f"v{expected + 1}")
        try:
            return await store.append_version(s, f"h{expected + 1}", expected, [event], chans(s))
        except VersionConflict:
            await asyncio.sleep(0)


# -- feeds -----------------------------------------------------------------------------------------


def test_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)


async def test_ping_answers_and_writes_nothing(store: Store) -> None:
    await store.ping()
    assert await store.list_feeds() == []
    assert (await store.log_bounds("feed:none")).last == 0


async def test_feed_upsert_get_list_delete(store: Store) -> None:
    assert await store.get_feed("nope") is None
    assert await store.list_feeds() == []
    a = FeedConfig(id="b-feed", url="https://b.example/rss", interval_seconds=30.0)
    b = FeedConfig(id="a-feed", url="https://a.example/atom", title="Ä feed", paused=True)
    await store.upsert_feed(a)
    await store.upsert_feed(b)
    assert await store.get_feed("b-feed") == a
    assert sorted(f.id for f in await store.list_feeds()) == ["a-feed", "b-feed"]

    a2 = replace(a, interval_seconds=120.0, adaptive=False, title="Renamed")
    await store.upsert_feed(a2)
    assert await store.get_feed("b-feed") == a2
    assert len(await store.list_feeds()) == 2

    await store.set_fetch_state("b-feed", FetchState(etag='"x"', consecutive_errors=2))
    assert await store.delete_feed("b-feed") is True
    assert await store.delete_feed("b-feed") is False
    assert await store.get_feed("b-feed") is None
    assert await store.get_fetch_state("b-feed") == FetchState()
    assert [f.id for f in await store.list_feeds()] == ["a-feed"]


async def test_fetch_state_round_trip(store: Store) -> None:
    assert await store.get_fetch_state("unknown") == FetchState()
    state = FetchState(
        etag='W/"abc"',
        last_modified="Mon, 03 Feb 2031 08:00:00 GMT",
        not_before=1_950_000_000.25,
        consecutive_errors=3,
    )
    await store.set_fetch_state("f1", state)
    assert await store.get_fetch_state("f1") == state
    await store.set_fetch_state("f1", FetchState())
    assert await store.get_fetch_state("f1") == FetchState()


async def test_record_poll_and_feed_health(store: Store) -> None:
    assert await store.feed_health("f1") is None
    feed = FeedConfig(id="f1", url="https://one.example/feed")
    await store.upsert_feed(feed)

    health = await store.feed_health("f1")
    assert health is not None
    assert health.config == feed
    assert health.fetch == FetchState()
    assert (health.last_poll, health.last_error, health.stories) == (None, None, 0)

    bad = PollOutcome("f1", "2031-02-03T08:00:00Z", "error", http_status=503, error="HTTP 503")
    await store.record_poll(bad)
    await store.set_fetch_state("f1", FetchState(consecutive_errors=1))
    health = await store.feed_health("f1")
    assert health is not None
    assert health.last_poll == bad
    assert health.last_error == "HTTP 503"
    assert health.fetch.consecutive_errors == 1

    good = PollOutcome(
        "f1", "2031-02-03T08:01:00Z", "ok", http_status=200, entries=2, events=2, duration_ms=12.5
    )
    await store.record_poll(good)
    await add(store, snap("s1", feed="f1"), 0)
    await add(store, snap("s2", feed="f1"), 0)
    await add(store, snap("s1", feed="f1", title="New"), 1)
    await add(store, snap("other", feed="f2"), 0)
    health = await store.feed_health("f1")
    assert health is not None
    assert health.last_poll == good
    assert health.last_error == "HTTP 503"  # the last error stays visible after a success
    assert health.stories == 2


async def test_feeds_health_is_every_feeds_health_in_one_read(store: Store) -> None:
    assert await store.feeds_health() == []
    for feed_id in ("b-feed", "a-feed", "quiet"):
        await store.upsert_feed(FeedConfig(id=feed_id, url=f"https://{feed_id}.example/feed"))
    bad = PollOutcome("a-feed", "2031-02-03T08:00:00Z", "error", http_status=500)
    await store.record_poll(bad, FetchState(consecutive_errors=1))
    good = PollOutcome("b-feed", "2031-02-03T08:01:00Z", "ok", http_status=200, entries=1)
    await store.record_poll(good, FetchState(etag='"b1"'))
    await store.set_next_poll("b-feed", "2031-02-03T08:02:00.000Z")
    await add(store, snap("s1", feed="b-feed"), 0)
    await add(store, snap("s2", feed="b-feed"), 0)
    await add(store, snap("s3", feed="a-feed"), 0)

    every = await store.feeds_health()
    assert [h.config.id for h in every] == ["a-feed", "b-feed", "quiet"]
    # The same answers as asking feed by feed.
    assert every == [await store.feed_health(h.config.id) for h in every]
    a, b, quiet = every
    assert (a.last_poll, a.last_error, a.fetch.consecutive_errors, a.stories) == (
        bad,
        "HTTP 500",
        1,
        1,
    )
    assert (b.last_poll, b.fetch.etag, b.stories, b.next_poll_at) == (
        good,
        '"b1"',
        2,
        "2031-02-03T08:02:00.000Z",
    )
    assert (quiet.last_poll, quiet.stories, quiet.next_poll_at) == (None, 0, None)
    await store.delete_feed("quiet")
    assert [h.config.id for h in await store.feeds_health()] == ["a-feed", "b-feed"]


async def test_record_poll_can_write_the_fetch_state_with_it(store: Store) -> None:
    await store.upsert_feed(FeedConfig(id="f1", url="https://one.example/feed"))
    state = FetchState(etag='"v1"', last_modified="Mon, 03 Feb 2031 08:00:00 GMT")
    ok = PollOutcome("f1", "2031-02-03T08:00:00Z", "ok", http_status=200, entries=1)
    await store.record_poll(ok, state)
    health = await store.feed_health("f1")
    assert health is not None and health.last_poll == ok and health.fetch == state

    # Without a fetch state, the stored one is left as it is.
    same = PollOutcome("f1", "2031-02-03T08:01:00Z", "not_modified", http_status=304)
    await store.record_poll(same)
    assert await store.get_fetch_state("f1") == state

    failed = FetchState(etag=None, consecutive_errors=1)
    bad = PollOutcome("f1", "2031-02-03T08:02:00Z", "error", error="not a feed: empty body")
    await store.record_poll(bad, failed)
    health = await store.feed_health("f1")
    assert health is not None
    assert (health.last_poll, health.last_error, health.fetch) == (
        bad,
        "not a feed: empty body",
        failed,
    )


# -- versions and logs ---------------------------------------------------------------------------


async def test_new_story_gets_version_1_and_seq_1_per_channel(store: Store) -> None:
    s = snap("s1")
    entries = await add(store, s, 0)
    assert entries == [
        LogEntry(story_channel("s1"), 1, event("created", "s1", 0)),
        LogEntry(feed_channel(s.feed), 1, event("created", "s1", 0)),
    ]
    latest = await store.latest("s1")
    assert latest is not None
    assert (latest.version, latest.snapshot, latest.content_hash) == (1, s, "hash-s1-1")
    assert latest.at.endswith("Z") and latest.at.startswith("20")
    for channel in chans(s):
        assert await store.read_log(channel, 0, 10) == [e for e in entries if e.channel == channel]
        bounds = await store.log_bounds(channel)
        assert (bounds.first, bounds.last) == (1, 1)


async def test_seqs_are_gapless_and_shared_feed_channel_interleaves(store: Store) -> None:
    a, b = snap("a"), snap("b")
    await add(store, a, 0)
    await add(store, b, 0, n=2)
    await add(store, replace(a, title="A2"), 1)
    out = await add(store, replace(b, title="B2"), 1, n=3)

    feed_log = await store.read_log(feed_channel(a.feed), 0, 100)
    assert [e.seq for e in feed_log] == list(range(1, 8))
    assert [(e.event["story_id"], e.event["type"]) for e in feed_log] == [
        ("a", "created"),
        ("b", "created"),
        ("b", "created"),
        ("a", "updated"),
        ("b", "updated"),
        ("b", "updated"),
        ("b", "updated"),
    ]
    assert [e.seq for e in await store.read_log(story_channel("a"), 0, 100)] == [1, 2]
    assert [e.seq for e in await store.read_log(story_channel("b"), 0, 100)] == [1, 2, 3, 4, 5]
    # The returned entries are exactly what a reader will later read, in append order.
    assert out == [
        LogEntry(story_channel("b"), 3, event("updated", "b", 0)),
        LogEntry(feed_channel(a.feed), 5, event("updated", "b", 0)),
        LogEntry(story_channel("b"), 4, event("updated", "b", 1)),
        LogEntry(feed_channel(a.feed), 6, event("updated", "b", 1)),
        LogEntry(story_channel("b"), 5, event("updated", "b", 2)),
        LogEntry(feed_channel(a.feed), 7, event("updated", "b", 2)),
    ]
    assert await store.log_bounds(feed_channel(a.feed)) == LogBounds(
        1, 7, (await store.log_bounds(feed_channel(a.feed))).epoch
    )


async def test_version_conflict_writes_nothing(store: Store) -> None:
    s = snap("s1")
    await add(store, s, 0)
    before = {c: await store.log_bounds(c) for c in chans(s)}
    for wrong in (0, 2, 5):
        with pytest.raises(VersionConflict):
            await add(store, replace(s, title=f"wrong {wrong}"), wrong)
    latest = await store.latest("s1")
    assert latest is not None and latest.version == 1 and latest.snapshot == s
    assert await store.get_version("s1", 2) is None
    assert {c: await store.log_bounds(c) for c in chans(s)} == before
    with pytest.raises(VersionConflict):
        await add(store, snap("fresh"), 1)
    assert await store.latest("fresh") is None
    assert await store.read_log(story_channel("fresh"), 0, 10) == []


async def test_concurrent_appenders_on_one_store_exactly_one_wins(store: Store) -> None:
    s = snap("s1")
    await add(store, s, 0)
    results = await asyncio.gather(
        *(add(store, replace(s, title=f"T{i}"), 1) for i in range(2)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["VersionConflict", "list"]
    latest = await store.latest("s1")
    assert latest is not None and latest.version == 2
    assert [e.seq for e in await store.read_log(story_channel("s1"), 0, 10)] == [1, 2]


async def test_concurrent_appenders_on_two_stores_exactly_one_wins(backend: Opened) -> None:
    first, second = backend.open(), backend.open()
    for round_ in range(5):
        s = snap(f"s{round_}", title=f"round {round_}")
        results = await asyncio.gather(
            add(first, s, 0), add(second, replace(s, summary="other"), 0), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, list)]
        assert len(winners) == 1, results
        assert sum(isinstance(r, VersionConflict) for r in results) == 1, results
    feed_log = await second.read_log(feed_channel("harbour-gazette"), 0, 100)
    assert [e.seq for e in feed_log] == [1, 2, 3, 4, 5]


def worker(target: str, prefix: str, name: str, count: int) -> None:
    """Run in a child process: append `count` events to the shared story and a private one."""

    async def main() -> None:
        backends = open_url(target, prefix=prefix)
        store = backends.store
        try:
            for i in range(count):
                await append_with_retry(store, "shared", {"worker": name, "i": i})
                await append_with_retry(store, f"own-{name}", {"worker": name, "i": i})
        finally:
            await backends.close()

    asyncio.run(main())


async def test_several_processes_append_without_gaps(backend: Opened) -> None:
    names, count = ["w1", "w2", "w3", "w4"], 20
    target, prefix = backend.backend.target, backend.backend.prefix
    code = (
        "import sys; from tests.test_store_contract import worker;"
        "worker(*sys.argv[1:4], int(sys.argv[4]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, target, prefix, n, str(count)], cwd=ROOT)
        for n in names
    ]
    codes = await asyncio.to_thread(lambda: [p.wait(timeout=120) for p in procs])
    assert codes == [0] * len(names)

    store = backend.open()
    total = len(names) * count
    latest = await store.latest("shared")
    assert latest is not None and latest.version == total
    shared = await store.read_log(story_channel("shared"), 0, 1000)
    assert [e.seq for e in shared] == list(range(1, total + 1))
    # Every append landed exactly once, and each worker's own order is kept.
    by_worker: dict[str, list[int]] = {}
    for e in shared:
        by_worker.setdefault(e.event["worker"], []).append(e.event["i"])
    assert by_worker == {n: list(range(count)) for n in names}
    feed_log = await store.read_log(feed_channel("harbour-gazette"), 0, 1000)
    assert [e.seq for e in feed_log] == list(range(1, 2 * total + 1))
    for n in names:
        own = await store.read_log(story_channel(f"own-{n}"), 0, 100)
        assert [e.seq for e in own] == list(range(1, count + 1))


async def test_version_reads(store: Store) -> None:
    s = snap("s1")
    versions = [s, replace(s, title="Two"), replace(s, title="Three", paragraphs=())]
    for i, v in enumerate(versions):
        await add(store, v, i)
    assert await store.latest("missing") is None
    assert await store.get_version("s1", 0) is None
    assert await store.get_version("s1", 4) is None
    got = await store.get_version("s1", 2)
    assert got is not None and got.snapshot == versions[1] and got.content_hash == "hash-s1-2"


async def test_latest_hashes_of_a_feeds_stories(store: Store) -> None:
    assert await store.latest_hashes("harbour-gazette", []) == {}
    assert await store.latest_hashes("harbour-gazette", ["s1", "s2"]) == {}
    await add(store, snap("s1"), 0)
    await add(store, snap("s2"), 0)
    await add(store, snap("s1", title="Two"), 1)
    await add(store, snap("elsewhere", feed="other-feed"), 0)
    got = await store.latest_hashes("harbour-gazette", ["s1", "s2", "missing", "s1", "elsewhere"])
    assert got == {"s1": "hash-s1-2", "s2": "hash-s2-1"}  # latest versions, this feed only
    assert await store.latest_hashes("other-feed", ["elsewhere"]) == {
        "elsewhere": "hash-elsewhere-1"
    }
    many = [f"n{i}" for i in range(1200)]  # more ids than one SQL statement may bind
    assert await store.latest_hashes("harbour-gazette", [*many, "s2"]) == {"s2": "hash-s2-1"}


async def test_story_by_url_follows_the_latest_url(store: Store) -> None:
    s = snap("s1", url="https://harbour.example/draft")
    await add(store, s, 0)
    moved = replace(s, url="https://harbour.example/final", title="Final")
    await add(store, moved, 1)
    found = await store.story_by_url("https://harbour.example/final")
    assert found is not None and found.snapshot == moved and found.version == 2
    assert await store.story_by_url("https://harbour.example/draft") is None
    assert await store.story_by_url("https://nowhere.example/") is None


async def test_feed_stories_latest_first(store: Store) -> None:
    for name in ("a", "b", "c"):
        await add(store, snap(name), 0)
    await add(store, snap("a", title="A2"), 1)
    await add(store, snap("z", feed="elsewhere"), 0)
    stories = await store.feed_stories("harbour-gazette")
    assert [(v.snapshot.id, v.version) for v in stories] == [("a", 2), ("c", 1), ("b", 1)]
    assert stories[0].snapshot.title == "A2"
    assert [v.snapshot.id for v in await store.feed_stories("harbour-gazette", limit=2)] == [
        "a",
        "c",
    ]
    assert await store.feed_stories("unknown") == []


async def test_feed_listing_pages_feeds_in_id_order_with_counts(store: Store) -> None:
    for feed_id in ("harbour-gazette", "quay-post", "alder-times"):
        await store.upsert_feed(
            FeedConfig(id=feed_id, url=f"https://{feed_id}.example/rss", title=feed_id.title())
        )
    for name in ("a", "b"):
        await add(store, snap(name), 0)
    await add(store, snap("a", title="A2"), 1)
    await add(store, snap("q", feed="quay-post"), 0)
    await add(store, snap("x", feed="not-configured"), 0)  # stories of no listed feed

    listing = await store.feed_listing(None, 10)
    assert [(f.config.id, f.config.title, f.stories) for f in listing] == [
        ("alder-times", "Alder-Times", 0),
        ("harbour-gazette", "Harbour-Gazette", 2),
        ("quay-post", "Quay-Post", 1),
    ]
    assert listing[0].last_update is None
    newest = await store.latest("a")
    assert newest is not None and listing[1].last_update == newest.at

    first = await store.feed_listing(None, 2)
    rest = await store.feed_listing(first[-1].config.id, 2)
    assert [f.config.id for f in first + rest] == [f.config.id for f in listing]
    assert await store.feed_listing("quay-post", 2) == []
    assert await store.feed_listing(None, 0) == []


async def test_find_story_id_by_guid_then_url(store: Store) -> None:
    s = snap("s1", guid="tag:old-guid", url="https://harbour.example/one")
    await add(store, s, 0)
    await add(store, replace(s, guid="tag:new-guid", url="https://harbour.example/uno"), 1)
    await add(store, snap("s2", guid=None, url="https://harbour.example/two"), 0)
    feed = s.feed
    assert await store.find_story_id(feed, "tag:new-guid", None) == "s1"
    assert await store.find_story_id(feed, "tag:old-guid", None) == "s1"  # any version's guid
    assert await store.find_story_id(feed, None, "https://harbour.example/uno") == "s1"
    assert await store.find_story_id(feed, "tag:unknown", "https://harbour.example/two") == "s2"
    assert await store.find_story_id(feed, None, "https://harbour.example/one") is None
    assert await store.find_story_id(feed, None, None) is None
    assert await store.find_story_id("other-feed", "tag:new-guid", None) is None
    assert await store.find_story_id("other-feed", None, "https://harbour.example/two") is None


async def test_story_context_is_identity_latest_and_the_hashes_before_it(store: Store) -> None:
    s = snap("s1", guid="tag:old-guid", url="https://harbour.example/one")
    for i, title in enumerate(("One", "Two", "Three", "Four", "Five")):
        await add(store, replace(s, title=title), i)
    feed = s.feed
    # Found by guid, then by url: the known story, whatever id the entry would have had.
    ctx = await store.story_context(feed, "tag:old-guid", None, "fresh-id", 3)
    assert ctx.story_id == "s1"
    assert ctx.latest is not None and ctx.latest.version == 5
    assert ctx.latest.snapshot.title == "Five" and ctx.latest.content_hash == "hash-s1-5"
    assert ctx.earlier == ("hash-s1-4", "hash-s1-3", "hash-s1-2")  # newest first, `depth` of them
    by_url = await store.story_context(feed, "tag:other", "https://harbour.example/one", "x", 9)
    assert by_url.story_id == "s1" and by_url.earlier == tuple(f"hash-s1-{n}" for n in (4, 3, 2, 1))
    assert (await store.story_context(feed, None, s.url, "x", 0)).earlier == ()
    # Unknown: the entry's own id, no version; known by id only (no guid or url match).
    assert await store.story_context(feed, "tag:new", None, "s9", 3) == StoryContext("s9", None, ())
    by_id = await store.story_context(feed, None, None, "s1", 1)
    assert by_id.story_id == "s1" and by_id.earlier == ("hash-s1-4",)
    assert by_id.latest == await store.latest("s1")
    # Another feed's guid index does not know it.
    other = await store.story_context("other-feed", "tag:old-guid", None, "o1", 3)
    assert other == StoryContext("o1", None, ())


async def test_read_log_since_and_limit(store: Store) -> None:
    s = snap("s1")
    await add(store, s, 0, n=4)
    await add(store, replace(s, title="2"), 1, n=3)
    channel = story_channel("s1")
    assert [e.seq for e in await store.read_log(channel, 0, 100)] == list(range(1, 8))
    assert [e.seq for e in await store.read_log(channel, 2, 3)] == [3, 4, 5]
    assert [e.seq for e in await store.read_log(channel, 6, 10)] == [7]
    assert await store.read_log(channel, 7, 10) == []
    assert await store.read_log(channel, 100, 10) == []
    assert await store.read_log("story:never", 0, 10) == []
    entries = await store.read_log(channel, 4, 1)
    assert entries == [LogEntry(channel, 5, event("updated", "s1", 0))]


async def test_retention_trims_oldest_and_seqs_stay_gapless(backend: Opened) -> None:
    store = backend.open(log_retention=3)
    s = snap("s1")
    for version in range(6):
        await add(store, replace(s, title=f"v{version}"), version)
    channel = story_channel("s1")
    bounds = await store.log_bounds(channel)
    assert (bounds.first, bounds.last) == (4, 6)
    assert [e.seq for e in await store.read_log(channel, 0, 100)] == [4, 5, 6]
    out = await add(store, replace(s, title="v6"), 6, n=2)
    assert [e.seq for e in out if e.channel == channel] == [7, 8]
    bounds2 = await store.log_bounds(channel)
    assert (bounds2.first, bounds2.last, bounds2.epoch) == (6, 8, bounds.epoch)
    assert [e.seq for e in await store.read_log(channel, 0, 100)] == [6, 7, 8]
    # Versions are not subject to log retention.
    assert all([await store.get_version("s1", n) for n in range(1, 8)])


async def test_log_bounds_of_an_empty_channel(store: Store) -> None:
    for channel in (feed_channel("quiet"), story_channel("unborn")):
        bounds = await store.log_bounds(channel)
        assert (bounds.first, bounds.last) == (0, 0)
        assert isinstance(bounds.epoch, str) and bounds.epoch
    before = await store.log_bounds(story_channel("unborn"))
    await add(store, snap("unborn", feed="quiet"), 0)
    # A reader that looked before the first event must not be told its log was lost.
    assert (await store.log_bounds(story_channel("unborn"))).epoch == before.epoch


async def test_epoch_is_stable_across_reopen_and_new_after_loss(backend: Opened) -> None:
    store = backend.open()
    s = snap("s1")
    await add(store, s, 0)
    channel = story_channel("s1")
    epoch = (await store.log_bounds(channel)).epoch
    assert (await store.log_bounds(channel)).epoch == epoch
    await backend.close_all()

    reopened = backend.open()
    bounds = await reopened.log_bounds(channel)
    assert (bounds.epoch, bounds.last) == (epoch, 1)
    await backend.close_all()

    await backend.backend.lose_channel(channel)
    fresh = backend.open()
    lost = await fresh.log_bounds(channel)
    assert lost.epoch != epoch
    assert lost.last == 0
    # And once something is appended again, it keeps the new epoch.
    await fresh.append_version(
        replace(s, id="s1-again"), "h", 0, [event("created", "s1", 0)], [channel]
    )
    again = await fresh.log_bounds(channel)
    assert (again.first, again.last, again.epoch) == (1, 1, lost.epoch)


async def test_snapshots_and_events_round_trip_exactly(store: Store) -> None:
    odd = Snapshot(
        id="ünïcode-1",
        feed="журнал",
        url="https://example.org/ü?q=1&r=é#frag",
        title="Quotes \"double\" and 'single' — em dash, emoji 🚢, CJK 港口",
        summary="",
        authors=(),
        published=None,
        updated=None,
        paragraphs=("", "line\nbreak\ttab", "\u2028 separator", "nul-free but \\ backslash"),
        guid=None,
    )
    ev = {
        "type": "created",
        "nested": {"list": [1, 2.5, None, True, "ü"], "empty": {}, "none": None},
        "big": 2**53,
    }
    entries = await store.append_version(odd, "hash-ü", 0, [ev], chans(odd))
    assert [e.event for e in entries] == [ev, ev]
    got = await store.latest(odd.id)
    assert got is not None and got.snapshot == odd
    assert got.snapshot.authors == () and got.snapshot.paragraphs == odd.paragraphs
    assert got.content_hash == "hash-ü"
    assert (await store.read_log(story_channel(odd.id), 0, 5))[0].event == ev
    assert await store.story_by_url(odd.url) == got
    assert await store.feed_stories("журнал") == [got]


async def test_delete_feed_keeps_stories_and_logs(store: Store) -> None:
    await store.upsert_feed(FeedConfig(id="harbour-gazette", url="https://harbour.example/rss"))
    await add(store, snap("s1"), 0)
    assert await store.delete_feed("harbour-gazette") is True
    assert await store.latest("s1") is not None
    assert await store.feed_stories("harbour-gazette") != []
    assert len(await store.read_log(feed_channel("harbour-gazette"), 0, 10)) == 1


async def test_events_without_channels_or_channels_without_events(store: Store) -> None:
    s = snap("quiet")
    assert await store.append_version(s, "h1", 0, [], chans(s)) == []
    assert (
        await store.append_version(replace(s, title="2"), "h2", 1, [event("x", "q", 0)], []) == []
    )
    latest = await store.latest("quiet")
    assert latest is not None and latest.version == 2
    assert (await store.log_bounds(story_channel("quiet"))).last == 0


# -- schedule and audit (ops) ----------------------------------------------------------------------


async def test_next_poll_is_part_of_health_and_forgotten_with_the_feed(backend: Opened) -> None:
    store = backend.open()
    await store.upsert_feed(FeedConfig(id="f1", url="https://one.example/feed"))
    health = await store.feed_health("f1")
    assert health is not None and health.next_poll_at is None

    await store.set_next_poll("f1", "2031-02-03T08:00:10Z")
    # Another store object (another process) sees what the scheduler planned.
    other = backend.open()
    health = await other.feed_health("f1")
    assert health is not None and health.next_poll_at == "2031-02-03T08:00:10Z"

    await store.set_next_poll("f1", None)
    health = await store.feed_health("f1")
    assert health is not None and health.next_poll_at is None

    await store.set_next_poll("f1", "2031-02-03T08:00:20Z")
    await store.delete_feed("f1")
    await store.upsert_feed(FeedConfig(id="f1", url="https://one.example/feed"))
    health = await store.feed_health("f1")
    assert health is not None and health.next_poll_at is None


async def test_audit_lists_newest_first_with_limit(backend: Opened) -> None:
    store = backend.open()
    assert await store.list_audit(10) == []
    records = [
        {
            "at": f"2031-02-03T08:00:0{i}Z",
            "actor": "alice",
            "action": "feed.update",
            "feed_id": "f1",
            "before": {"interval_seconds": 60.0 + i},
            "after": {"interval_seconds": 10.0, "title": "Ä ✓"},
        }
        for i in range(5)
    ]
    for record in records:
        await store.append_audit(record)
    assert await backend.open().list_audit(3) == records[::-1][:3]
    assert await store.list_audit(100) == records[::-1]
    assert await store.list_audit(0) == []
