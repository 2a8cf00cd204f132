"""Redis-only behaviour: key layout and hash slots, loss detection, retention.

Everything a Store must do is in test_store_contract.py; this file covers what only Redis has.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from liveupdates.models import LogEntry, Snapshot, feed_channel, story_channel
from liveupdates.store.base import VersionConflict
from liveupdates.store.redis import RedisStore
from liveupdates.store.redisclient import MAX_CONNECTIONS


def snap(story: str, title: str = "Tram line extended", feed: str = "valley-post") -> Snapshot:
    return Snapshot(id=story, feed=feed, url=f"https://valley.example/{story}", title=title)


def chans(s: Snapshot) -> list[str]:
    return [story_channel(s.id), feed_channel(s.feed)]


@pytest.fixture
def store(redis_client: aioredis.Redis, redis_prefix: str) -> RedisStore:
    return RedisStore.from_client(redis_client, redis_prefix)


async def keys_of(redis_client: aioredis.Redis, prefix: str) -> list[str]:
    return sorted([k async for k in redis_client.scan_iter(match=prefix + "*")])


async def test_a_story_append_touches_only_one_hash_slot(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    s = snap("s1")
    await store.append_version(s, "h", 0, [{"n": 1}], chans(s))
    await store.append_version(snap("s2"), "h", 0, [{"n": 2}], chans(snap("s2")))
    keys = await keys_of(redis_client, redis_prefix)
    global_keys = {f"{redis_prefix}storyfeeds", *(f"{redis_prefix}storyfeed:s{i}" for i in (1, 2))}
    assert global_keys <= set(keys)
    feed_keys = [k for k in keys if k not in global_keys]
    assert all("{feed:valley-post}" in k for k in feed_keys), feed_keys
    assert len({key_slot(k.encode()) for k in feed_keys}) == 1
    assert await redis_client.type(f"{redis_prefix}{{feed:valley-post}}:log:story:s1") == "stream"


async def test_lost_counter_means_new_epoch_and_fresh_log(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    s = snap("s1")
    await store.append_version(s, "h1", 0, [{"n": 1}, {"n": 2}], chans(s))
    before = await store.log_bounds(story_channel("s1"))
    assert (before.first, before.last) == (1, 2)
    await redis_client.delete(f"{redis_prefix}{{feed:valley-post}}:ch:story:s1")

    after = await store.log_bounds(story_channel("s1"))
    assert after.epoch != before.epoch
    assert (after.first, after.last) == (0, 0)
    # The surviving stream was dropped: old seqs must not be served under the new epoch.
    assert await store.read_log(story_channel("s1"), 0, 10) == []
    out = await store.append_version(snap("s1", "t2"), "h2", 1, [{"n": 3}], chans(s))
    assert out[0] == LogEntry(story_channel("s1"), 1, {"n": 3})
    assert (await store.log_bounds(story_channel("s1"))).epoch == after.epoch


async def test_lost_counter_is_detected_by_append_too(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    s = snap("s1")
    await store.append_version(s, "h1", 0, [{"n": 1}], chans(s))
    epoch = (await store.log_bounds(feed_channel("valley-post"))).epoch
    await redis_client.delete(f"{redis_prefix}{{feed:valley-post}}:ch:feed:valley-post")
    out = await store.append_version(snap("s2"), "h", 0, [{"n": 2}], chans(snap("s2")))
    assert [e.seq for e in out] == [1, 1]
    bounds = await store.log_bounds(feed_channel("valley-post"))
    assert bounds.epoch != epoch and (bounds.first, bounds.last) == (1, 1)


async def test_lost_stream_means_new_epoch(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    s = snap("s1")
    await store.append_version(s, "h1", 0, [{"n": 1}], chans(s))
    epoch = (await store.log_bounds(story_channel("s1"))).epoch
    await redis_client.delete(f"{redis_prefix}{{feed:valley-post}}:log:story:s1")
    bounds = await store.log_bounds(story_channel("s1"))
    assert bounds.epoch != epoch and (bounds.first, bounds.last) == (0, 0)


async def test_everything_lost_means_new_epoch(redis_url: str, redis_prefix: str) -> None:
    from tests.support.redis_server import delete_prefix

    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        s = snap("s1")
        await store.append_version(s, "h1", 0, [{"n": 1}], chans(s))
        epochs = [(await store.log_bounds(c)).epoch for c in chans(s)]
        delete_prefix(redis_url, redis_prefix)  # like a restart without persistence
    finally:
        await store.close()
    fresh = RedisStore(redis_url, prefix=redis_prefix)
    try:
        assert await fresh.latest("s1") is None
        for channel, old in zip(chans(s), epochs, strict=True):
            bounds = await fresh.log_bounds(channel)
            assert bounds.epoch != old and bounds.last == 0
    finally:
        await fresh.close()


async def test_retention_uses_stream_maxlen(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    store = RedisStore.from_client(redis_client, redis_prefix, log_retention=3)
    s = snap("s1")
    await store.append_version(s, "h", 0, [{"n": i} for i in range(10)], chans(s))
    assert await redis_client.xlen(f"{redis_prefix}{{feed:valley-post}}:log:story:s1") == 3
    bounds = await store.log_bounds(story_channel("s1"))
    assert (bounds.first, bounds.last) == (8, 10)
    with pytest.raises(ValueError):
        RedisStore.from_client(redis_client, redis_prefix, log_retention=0)


async def test_provisional_epochs_expire_until_first_append(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    feed_hash = f"{redis_prefix}{{feed:quiet}}:ch:feed:quiet"
    await store.log_bounds(feed_channel("quiet"))
    await store.log_bounds(story_channel("unborn"))
    assert await redis_client.ttl(feed_hash) > 0
    assert await redis_client.ttl(f"{redis_prefix}pending-epoch:story:unborn") > 0
    await store.append_version(
        snap("unborn", feed="quiet"), "h", 0, [{}], chans(snap("unborn", feed="quiet"))
    )
    assert await redis_client.ttl(feed_hash) == -1  # kept for good once it has a log


async def test_client_without_decode_responses(redis_url: str, redis_prefix: str) -> None:
    raw = aioredis.Redis.from_url(redis_url)  # bytes replies
    try:
        store = RedisStore.from_client(raw, redis_prefix)
        s = snap("s1", title="Ünïcode ✓")
        await store.append_version(s, "h", 0, [{"t": "é"}], chans(s))
        assert (await store.latest("s1")).snapshot == s  # type: ignore[union-attr]
        assert await store.read_log("story:s1", 0, 5) == [LogEntry("story:s1", 1, {"t": "é"})]
        assert (await store.log_bounds("story:s1")).epoch.isalnum()
        assert await store.find_story_id("valley-post", None, s.url) == "s1"
        assert [v.snapshot for v in await store.feed_stories("valley-post")] == [s]
        assert (await store.story_by_url(s.url)).snapshot == s  # type: ignore[union-attr]
        await store.close()
        assert await raw.ping()  # from_client leaves the caller's client open
    finally:
        await raw.aclose()


async def test_a_retried_append_is_not_applied_twice(store: RedisStore) -> None:
    s = snap("s1")
    await store.append_version(s, "h", 0, [{"n": 1}], chans(s))
    with pytest.raises(VersionConflict):
        await store.append_version(s, "h", 0, [{"n": 1}], chans(s))
    assert (await store.log_bounds(story_channel("s1"))).last == 1


async def test_a_lost_story_mapping_is_restored_by_the_next_append(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str, redis_url: str
) -> None:
    s = snap("s1")
    await store.append_version(s, "h1", 0, [{"n": 1}], chans(s))
    await redis_client.delete(f"{redis_prefix}storyfeed:s1")  # `store` still has it cached
    await store.append_version(snap("s1", "t2"), "h2", 1, [{"n": 2}], chans(s))
    other = RedisStore(redis_url, prefix=redis_prefix)  # another process, empty cache
    try:
        latest = await other.latest("s1")
        assert latest is not None and latest.version == 2
        assert [e.seq for e in await other.read_log(story_channel("s1"), 0, 10)] == [1, 2]
    finally:
        await other.close()


async def test_latest_hashes_reads_the_version_when_the_hash_field_is_missing_or_stale(
    store: RedisStore, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    for name in ("s1", "s2", "s3"):
        await store.append_version(snap(name), f"h-{name}-1", 0, [], [])
    await store.append_version(snap("s2", title="Two"), "h-s2-2", 1, [], [])
    key = f"{redis_prefix}{{feed:valley-post}}:story:"
    # As written by a process from before the field existed: none, or one a version behind.
    await redis_client.hdel(key + "s1", "hash")
    await redis_client.hset(key + "s2", "hash", "1 h-s2-1")
    assert await store.latest_hashes("valley-post", ["s1", "s2", "s3", "s4"]) == {
        "s1": "h-s1-1",
        "s2": "h-s2-2",
        "s3": "h-s3-1",
    }


async def test_a_storm_of_calls_beyond_the_pool_waits_for_connections(
    redis_url: str, redis_prefix: str
) -> None:
    """A reconnect storm puts thousands of subscribes on the store at once: the calls past the
    pool's size wait for a free connection; none fails with "too many connections"."""
    opened = RedisStore(redis_url, prefix=redis_prefix)
    try:
        s = snap("storm")
        await opened.append_version(s, "h", 0, [{"n": 1}], chans(s))
        found = await asyncio.gather(*(opened.latest("storm") for _ in range(3 * MAX_CONNECTIONS)))
        assert all(v is not None and v.version == 1 for v in found)
    finally:
        await opened.close()
