"""Redis backend for the Store Protocol (redis.asyncio).

Key layout (P = prefix, default "lu:"; T = "{feed:<feed id>}", the hash tag of a feed)
--------------------------------------------------------------------------------------
Global (each a single key, so fine on Cluster):

    P feeds                     hash  feed id -> FeedConfig JSON
    P audit                     list  ops change records (JSON), newest at the head
    P storyfeeds                set   ids of feeds that have stories (story_by_url searches them)
    P storyfeed:<story id>      str   the feed a story belongs to: routes every key of the story
    P pending-epoch:<channel>   str   provisional epoch of a story channel whose story does not exist
                                      yet (TTL 7 days), adopted by its first append

Per feed, all under the feed's hash tag T so they live in one Cluster slot:

    P T:fetch                   str   FetchState JSON
    P T:poll                    hash  outcome (PollOutcome JSON), error (last error text)
    P T:next                    str   ISO time of the next planned poll (absent: none planned)
    P T:stories                 zset  story id scored by P T:clock at its latest change
    P T:clock                   str   counter ordering changes within the feed
    P T:guids                   hash  guid (of any version) -> story id
    P T:urls                    hash  latest url -> story id
    P T:story:<story id>        hash  latest (int), url, cur (latest version JSON), v:<n> (JSON),
                                      hash ("<latest> <content hash>", so a cheap read can check it)
    P T:ch:<channel>            hash  seq (last seq handed out), epoch
    P T:log:<channel>           stream, entry id "<seq>-0", field e = event JSON

The channel "feed:<id>" uses that feed's tag; "story:<id>" uses the tag of the feed the story
belongs to (looked up in P storyfeed:<id>, claimed by the first append that names the channel);
any other channel name uses its own tag "{ch:<name>}".

Atomicity and Cluster
---------------------
append_version is one Lua script (EVALSHA via register_script): it checks the story's latest
version, writes the version and indexes, and XADDs every event to every channel with the next
seq from the channel's counter, all in one atomic step, so concurrent appenders in any number of
processes cannot both win and a failed check writes nothing. Because every key the script touches
carries the same feed hash tag, the script also runs unchanged on Redis Cluster, provided the
channels passed are that feed's "feed:<id>" and its stories' "story:<id>" channels (the pipeline
only uses those). Other channel names get their own tag and so only work with standalone Redis.
The global keys above are only touched by single-key commands outside the script.

Epochs
------
Each channel has its own epoch, stored in the same hash as its seq counter. When the counter is
missing (first use, or lost: Redis restarted without persistence, keys deleted) a new random epoch
is written, and a stream that survived without its counter (or vice versa) is dropped: a reader
then sees a different epoch and resets instead of silently skipping or repeating events. Looking
at a channel (log_bounds) creates its epoch lazily, with a TTL until the first append, so a reader
that subscribed before the first event keeps its epoch.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import redis.asyncio as aioredis

from liveupdates.api.models import DEFAULT_FEED_STORIES_LIMIT
from liveupdates.models import (
    FeedConfig,
    FeedHealth,
    FeedListing,
    FetchState,
    LogEntry,
    PollOutcome,
    Snapshot,
    StoredVersion,
)
from liveupdates.store.base import (
    LogBounds,
    StoryContext,
    VersionConflict,
    dump_event,
    error_text,
    snapshot_record,
    unique_channels,
    utc_now_iso,
)
from liveupdates.store.redisclient import open_client

# How long a provisional epoch (looked at, never appended to) is kept.
PROVISIONAL_TTL = 7 * 24 * 3600

# Checks a channel's counter against its stream and repairs a lost pair with a new epoch.
# Shared by both scripts: returns the channel's seq after the check.
_CHECK_CHANNEL = """
local function check_channel(hk, sk, initial_epoch, fresh_epoch)
  local cur = redis.call('HMGET', hk, 'seq', 'epoch')
  local seq = tonumber(cur[1])
  local epoch = cur[2]
  local has_stream = redis.call('EXISTS', sk) == 1
  if seq == nil and not epoch then
    -- never used, or the whole counter was lost: old entries (if any) mean nothing now
    if has_stream then redis.call('DEL', sk) end
    redis.call('HSET', hk, 'seq', 0, 'epoch', initial_epoch)
    return 0, initial_epoch, true
  end
  if seq == nil or not epoch or (seq > 0 and not has_stream) or (seq == 0 and has_stream) then
    -- half lost: start a new log under a new epoch
    if has_stream then redis.call('DEL', sk) end
    redis.call('HSET', hk, 'seq', 0, 'epoch', fresh_epoch)
    return 0, fresh_epoch, true
  end
  return seq, epoch, false
end
"""

_APPEND = (
    _CHECK_CHANNEL
    + """
-- KEYS: 1 story hash, 2 stories zset, 3 clock, 4 guids, 5 urls, then per channel: hash, stream
-- ARGV: 1 expected, 2 version JSON, 3 story id, 4 guid or '', 5 url, 6 retention (0 = none),
--       7 fresh epoch, 8 number of events, then the events, then one initial epoch per channel,
--       then the content hash
local latest = tonumber(redis.call('HGET', KEYS[1], 'latest') or '0')
if latest ~= tonumber(ARGV[1]) then
  return {0, latest}
end
local version = latest + 1
local sid = ARGV[3]
local url = ARGV[5]
local retention = tonumber(ARGV[6])
local nev = tonumber(ARGV[8])
local nch = (#KEYS - 5) / 2
local chash = ARGV[9 + nev + nch]

local old_url = redis.call('HGET', KEYS[1], 'url')
redis.call('HSET', KEYS[1], 'latest', version, 'url', url, 'cur', ARGV[2], 'v:' .. version, ARGV[2],
           'hash', version .. ' ' .. chash)
if old_url and old_url ~= url and redis.call('HGET', KEYS[5], old_url) == sid then
  redis.call('HDEL', KEYS[5], old_url)
end
redis.call('HSET', KEYS[5], url, sid)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[4], sid)
end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), sid)

local out = {1}
if nev == 0 then return out end
for c = 1, nch do
  local hk = KEYS[4 + 2 * c]
  check_channel(hk, KEYS[5 + 2 * c], ARGV[8 + nev + c], ARGV[7])
  redis.call('PERSIST', hk)
end
for e = 1, nev do
  local body = ARGV[8 + e]
  for c = 1, nch do
    local seq = redis.call('HINCRBY', KEYS[4 + 2 * c], 'seq', 1)
    local id = string.format('%d-0', seq)
    if retention > 0 then
      redis.call('XADD', KEYS[5 + 2 * c], 'MAXLEN', '=', retention, id, 'e', body)
    else
      redis.call('XADD', KEYS[5 + 2 * c], id, 'e', body)
    end
    out[#out + 1] = seq
  end
end
return out
"""
)

_BOUNDS = (
    _CHECK_CHANNEL
    + """
-- KEYS: 1 channel hash, 2 stream. ARGV: 1 fresh epoch, 2 TTL for a channel nobody appended to
local seq, epoch, created = check_channel(KEYS[1], KEYS[2], ARGV[1], ARGV[1])
if created then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2])) end
local first = 0
local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #head > 0 then first = tonumber(string.match(head[1][1], '^(%d+)')) end
return {first, seq, epoch}
"""
)


def _str(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _new_epoch() -> str:
    return secrets.token_hex(8)


def _version_from_json(text: Any) -> StoredVersion:
    data = json.loads(_str(text))
    return StoredVersion(
        snapshot=Snapshot.from_json(data["snapshot"]),
        version=data["version"],
        content_hash=data["content_hash"],
        at=data["at"],
    )


class RedisStore:
    """Store on Redis (standalone; Cluster-ready key layout, see the module docstring)."""

    def __init__(self, url: str, *, prefix: str = "lu:", log_retention: int | None = None) -> None:
        client = open_client(url, decode_responses=True)
        self._init(client, prefix, log_retention, owns_client=True)

    @classmethod
    def from_client(
        cls, client: aioredis.Redis, prefix: str = "lu:", *, log_retention: int | None = None
    ) -> RedisStore:
        """Wrap an existing client (left open by close(); its owner closes it)."""
        store = cls.__new__(cls)
        store._init(client, prefix, log_retention, owns_client=False)
        return store

    def _init(
        self,
        client: aioredis.Redis,
        prefix: str,
        log_retention: int | None,
        *,
        owns_client: bool,
    ) -> None:
        if log_retention is not None and log_retention < 1:
            raise ValueError("log_retention must be at least 1 (or None for unlimited)")
        if "{" in prefix or "}" in prefix:
            raise ValueError("prefix must not contain '{' or '}' (they are hash tags)")
        self.client = client
        self.prefix = prefix
        self.log_retention = log_retention
        self._owns_client = owns_client
        self._append_script = client.register_script(_APPEND)
        self._bounds_script = client.register_script(_BOUNDS)
        # story id -> feed id. A story never changes feed, so a hit never goes stale.
        self._story_feed: dict[str, str] = {}

    # -- keys ------------------------------------------------------------------------------------

    @property
    def feeds_key(self) -> str:
        """Every feed's config; the WebSub store part reads it too (`push_target`)."""
        return f"{self.prefix}feeds"

    def _feed_key(self, feed_id: str, name: str) -> str:
        return f"{self.prefix}{{feed:{feed_id}}}:{name}"

    def _story_feed_key(self, story_id: str) -> str:
        return f"{self.prefix}storyfeed:{story_id}"

    def _pending_key(self, channel: str) -> str:
        return f"{self.prefix}pending-epoch:{channel}"

    async def _feed_of_story(self, story_id: str, claim: str | None = None) -> str | None:
        """The feed whose hash tag holds the story's keys; `claim` sets it if unset.

        A claim always goes to Redis (never answered from the cache): if Redis lost the mapping,
        the writer must put it back or other processes could no longer find the story.
        """
        key = self._story_feed_key(story_id)
        if claim is None:
            feed = self._story_feed.get(story_id)
            if feed is not None:
                return feed
            feed = _str(await self.client.get(key))
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(key, claim, nx=True)
                pipe.get(key)
                _, feed = await pipe.execute()
            feed = _str(feed)
        if feed is not None:
            if len(self._story_feed) > 100_000:
                self._story_feed.clear()
            self._story_feed[story_id] = feed
        return feed

    async def _channel_keys(self, channel: str, claim: str | None = None) -> tuple[str, str] | None:
        """(counter hash, stream) of a channel; None for a story channel of an unknown story."""
        if channel.startswith("feed:"):
            tag = "{" + channel + "}"
        elif channel.startswith("story:"):
            feed = await self._feed_of_story(channel.removeprefix("story:"), claim)
            if feed is None:
                return None
            tag = f"{{feed:{feed}}}"
        else:
            tag = f"{{ch:{channel}}}"
        return f"{self.prefix}{tag}:ch:{channel}", f"{self.prefix}{tag}:log:{channel}"

    async def channel_keys(self, channel: str) -> tuple[str, str] | None:
        """(counter hash, stream) of a channel, for readers of the streams (the Redis bus).

        None for the channel of a story no append has named yet: its keys are not known until
        the story's feed is.
        """
        return await self._channel_keys(channel)

    async def forget_channel(self, channel: str) -> None:
        """Drop a channel's log, counter and epoch (ops/tests: simulates losing the log)."""
        keys = await self._channel_keys(channel)
        await self.client.delete(*(keys or ()), self._pending_key(channel))

    # -- feeds -----------------------------------------------------------------------------------

    async def upsert_feed(self, feed: FeedConfig) -> None:
        await self.client.hset(
            self.feeds_key, feed.id, json.dumps(asdict(feed), ensure_ascii=False)
        )

    async def get_feed(self, feed_id: str) -> FeedConfig | None:
        raw = await self.client.hget(self.feeds_key, feed_id)
        return FeedConfig(**json.loads(_str(raw))) if raw is not None else None

    async def list_feeds(self) -> list[FeedConfig]:
        raw = await self.client.hgetall(self.feeds_key)
        feeds = [FeedConfig(**json.loads(_str(v))) for v in raw.values()]
        return sorted(feeds, key=lambda f: f.id)

    async def feed_listing(self, after: str | None, limit: int) -> list[FeedListing]:
        if limit <= 0:
            return []
        raw = await self.client.hgetall(self.feeds_key)
        page = sorted(
            (FeedConfig(**json.loads(_str(v))) for k, v in raw.items() if _str(k) > (after or "")),
            key=lambda f: f.id,
        )[:limit]
        if not page:
            return []
        # Two pipelined round trips for the whole page: counts and newest story ids, then the
        # newest stories' latest versions (for their time).
        async with self.client.pipeline(transaction=False) as pipe:
            for feed in page:
                pipe.zcard(self._feed_key(feed.id, "stories"))
                pipe.zrevrange(self._feed_key(feed.id, "stories"), 0, 0)
            counted = await pipe.execute()
        counts, newest = counted[0::2], counted[1::2]
        async with self.client.pipeline(transaction=False) as pipe:
            for feed, ids in zip(page, newest, strict=True):
                if ids:
                    pipe.hget(self._feed_key(feed.id, f"story:{_str(ids[0])}"), "cur")
            latest = iter(await pipe.execute())
        listings: list[FeedListing] = []
        for feed, count, ids in zip(page, counts, newest, strict=True):
            cur = next(latest) if ids else None
            at = _version_from_json(cur).at if cur is not None else None
            listings.append(FeedListing(feed, int(count), at))
        return listings

    async def delete_feed(self, feed_id: str) -> bool:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hdel(self.feeds_key, feed_id)
            pipe.delete(self._feed_key(feed_id, "fetch"), self._feed_key(feed_id, "next"))
            removed, _ = await pipe.execute()
        return bool(removed)

    async def get_fetch_state(self, feed_id: str) -> FetchState:
        raw = await self.client.get(self._feed_key(feed_id, "fetch"))
        return FetchState(**json.loads(_str(raw))) if raw is not None else FetchState()

    async def set_fetch_state(self, feed_id: str, state: FetchState) -> None:
        await self.client.set(self._feed_key(feed_id, "fetch"), json.dumps(asdict(state)))

    async def record_poll(
        self, outcome: PollOutcome, fetch_state: FetchState | None = None
    ) -> None:
        mapping: dict[Any, Any] = {"outcome": json.dumps(asdict(outcome), ensure_ascii=False)}
        error = error_text(outcome)
        if error is not None:  # otherwise the previous error field stays
            mapping["error"] = error
        poll_key = self._feed_key(outcome.feed_id, "poll")
        if fetch_state is None:
            await self.client.hset(poll_key, mapping=mapping)
            return
        # Both keys carry the feed's hash tag: one MULTI/EXEC in one round trip, Cluster-safe.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(poll_key, mapping=mapping)
            pipe.set(self._feed_key(outcome.feed_id, "fetch"), json.dumps(asdict(fetch_state)))
            await pipe.execute()

    def _queue_health(self, pipe: Any, feed_id: str) -> None:
        pipe.get(self._feed_key(feed_id, "fetch"))
        pipe.hmget(self._feed_key(feed_id, "poll"), ["outcome", "error"])
        pipe.zcard(self._feed_key(feed_id, "stories"))
        pipe.get(self._feed_key(feed_id, "next"))

    @staticmethod
    def _health(config: Any, fetch: Any, poll: Any, count: Any, next_poll: Any) -> FeedHealth:
        outcome, error = poll
        return FeedHealth(
            config=FeedConfig(**json.loads(_str(config))),
            fetch=FetchState(**json.loads(_str(fetch))) if fetch is not None else FetchState(),
            last_poll=PollOutcome(**json.loads(_str(outcome))) if outcome is not None else None,
            last_error=_str(error),
            stories=int(count),
            next_poll_at=_str(next_poll),
        )

    async def feed_health(self, feed_id: str) -> FeedHealth | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(self.feeds_key, feed_id)
            self._queue_health(pipe, feed_id)
            config, *rest = await pipe.execute()
        return None if config is None else self._health(config, *rest)

    async def feeds_health(self) -> list[FeedHealth]:
        # Two round trips whatever the number of feeds: the list, then every feed's keys in one
        # pipeline (one script could not, as each feed's keys have their own hash slot).
        configs = await self.client.hgetall(self.feeds_key)
        ids = sorted(_str(k) for k in configs)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for feed_id in ids:
                self._queue_health(pipe, feed_id)
            replies = await pipe.execute()
        by_id = {_str(k): v for k, v in configs.items()}
        return [
            self._health(by_id[feed_id], *replies[4 * i : 4 * i + 4])
            for i, feed_id in enumerate(ids)
        ]

    async def set_next_poll(self, feed_id: str, at: str | None) -> None:
        key = self._feed_key(feed_id, "next")
        if at is None:
            await self.client.delete(key)
        else:
            await self.client.set(key, at)

    # -- audit -----------------------------------------------------------------------------------

    async def append_audit(self, record: dict[str, Any]) -> None:
        await self.client.lpush(f"{self.prefix}audit", json.dumps(record, ensure_ascii=False))

    async def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        raws = await self.client.lrange(f"{self.prefix}audit", 0, limit - 1)
        return [json.loads(_str(r)) for r in raws]

    # -- stories ---------------------------------------------------------------------------------

    async def find_story_id(self, feed_id: str, guid: str | None, url: str | None) -> str | None:
        if not guid and not url:
            return None
        # Both indexes in one round trip: the guid's answer wins when it has one.
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(self._feed_key(feed_id, "guids"), guid or "")
            pipe.hget(self._feed_key(feed_id, "urls"), url or "")
            by_guid, by_url = await pipe.execute()
        if guid and by_guid is not None:
            return _str(by_guid)
        if url and by_url is not None:
            return _str(by_url)
        return None

    async def story_context(
        self, feed_id: str, guid: str | None, url: str | None, story_id: str, depth: int
    ) -> StoryContext:
        sid = await self.find_story_id(feed_id, guid, url) or story_id
        key = await self._story_key(sid)
        if key is None:
            return StoryContext(sid, None, ())
        raw, latest = await self.client.hmget(key, ["cur", "latest"])
        if raw is None:
            return StoryContext(sid, None, ())
        current = _version_from_json(raw)
        top = int(latest or current.version)
        fields = [f"v:{n}" for n in range(top - 1, max(top - 1 - depth, 0), -1)]
        raws = await self.client.hmget(key, fields) if fields else []
        earlier = tuple(json.loads(_str(r))["content_hash"] for r in raws if r is not None)
        return StoryContext(sid, current, earlier)

    async def _story_key(self, story_id: str) -> str | None:
        feed = await self._feed_of_story(story_id)
        return None if feed is None else self._feed_key(feed, f"story:{story_id}")

    async def latest(self, story_id: str) -> StoredVersion | None:
        key = await self._story_key(story_id)
        raw = None if key is None else await self.client.hget(key, "cur")
        return _version_from_json(raw) if raw is not None else None

    async def latest_hashes(self, feed_id: str, story_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(story_ids))
        if not ids:
            return {}
        # A story's keys live under its feed's tag (story ids are derived from the feed id); a
        # story filed under another feed is simply not found here, like an unknown one.
        keys = [self._feed_key(feed_id, f"story:{sid}") for sid in ids]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, ["latest", "hash"])
            rows = await pipe.execute()
        found: dict[str, str] = {}
        stale: list[tuple[str, str]] = []
        for sid, key, (latest, tagged) in zip(ids, keys, rows, strict=True):
            if latest is None:
                continue
            version, _, digest = (_str(tagged) or "").partition(" ")
            if version == _str(latest) and digest:
                found[sid] = digest
            else:
                # Written before the hash field existed (or by an older process): read the
                # version itself.
                stale.append((sid, key))
        if stale:
            async with self.client.pipeline(transaction=False) as pipe:
                for _, key in stale:
                    pipe.hget(key, "cur")
                raws = await pipe.execute()
            for (sid, _), raw in zip(stale, raws, strict=True):
                if raw is not None:
                    found[sid] = _version_from_json(raw).content_hash
        return found

    async def get_version(self, story_id: str, version: int) -> StoredVersion | None:
        key = await self._story_key(story_id)
        raw = None if key is None else await self.client.hget(key, f"v:{version}")
        return _version_from_json(raw) if raw is not None else None

    async def story_by_url(self, url: str) -> StoredVersion | None:
        # The url index is per feed (so the append script stays in one slot): ask every feed
        # that has stories, in one round trip.
        feeds = sorted(_str(f) for f in await self.client.smembers(f"{self.prefix}storyfeeds"))
        if not feeds:
            return None
        async with self.client.pipeline(transaction=False) as pipe:
            for feed in feeds:
                pipe.hget(self._feed_key(feed, "urls"), url)
            hits = await pipe.execute()
        found = [(feed, _str(sid)) for feed, sid in zip(feeds, hits, strict=True) if sid]
        if not found:
            return None
        async with self.client.pipeline(transaction=False) as pipe:
            for feed, sid in found:
                pipe.hget(self._feed_key(feed, f"story:{sid}"), "cur")
            raws = await pipe.execute()
        versions = [_version_from_json(r) for r in raws if r is not None]
        versions = [v for v in versions if v.snapshot.url == url]
        return max(versions, key=lambda v: v.at, default=None)

    async def feed_stories(
        self, feed_id: str, limit: int = DEFAULT_FEED_STORIES_LIMIT
    ) -> list[StoredVersion]:
        if limit <= 0:
            return []
        ids = await self.client.zrevrange(self._feed_key(feed_id, "stories"), 0, limit - 1)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hget(self._feed_key(feed_id, f"story:{_str(sid)}"), "cur")
            raws = await pipe.execute()
        return [_version_from_json(r) for r in raws if r is not None]

    async def append_version(
        self,
        snapshot: Snapshot,
        content_hash: str,
        expected_version: int,
        events: list[dict[str, Any]],
        channels: list[str],
    ) -> list[LogEntry]:
        feed = await self._feed_of_story(snapshot.id, claim=snapshot.feed)
        assert feed is not None  # just claimed
        await self.client.sadd(f"{self.prefix}storyfeeds", feed)
        targets = unique_channels(channels) if events else []
        keys = [
            self._feed_key(feed, f"story:{snapshot.id}"),
            self._feed_key(feed, "stories"),
            self._feed_key(feed, "clock"),
            self._feed_key(feed, "guids"),
            self._feed_key(feed, "urls"),
        ]
        initial_epochs: list[str] = []
        for channel in targets:
            # A story channel named here belongs to this feed from now on (unless it already
            # belongs to another), so it always lands in the same slot as the story.
            pair = await self._channel_keys(channel, claim=feed)
            assert pair is not None
            keys.extend(pair)
            pending = None
            if channel.startswith("story:"):
                pending = _str(await self.client.get(self._pending_key(channel)))
            initial_epochs.append(pending or _new_epoch())
        version_json = json.dumps(
            {
                "snapshot": snapshot_record(snapshot),
                "version": expected_version + 1,
                "content_hash": content_hash,
                "at": utc_now_iso(),
            },
            ensure_ascii=False,
        )
        bodies = [dump_event(e) for e in events]
        args: list[Any] = [
            expected_version,
            version_json,
            snapshot.id,
            snapshot.guid or "",
            snapshot.url,
            self.log_retention or 0,
            _new_epoch(),
            len(bodies),
            *bodies,
            *initial_epochs,
            content_hash,
        ]
        result = await self._append_script(keys=keys, args=args)
        if int(result[0]) != 1:
            raise VersionConflict(
                f"story {snapshot.id}: expected version {expected_version},"
                f" latest is {int(result[1])}"
            )
        seqs = iter(int(s) for s in result[1:])
        return [
            LogEntry(channel, next(seqs), json.loads(body))
            for body in bodies
            for channel in targets
        ]

    # -- channel logs ----------------------------------------------------------------------------

    async def log_bounds(self, channel: str) -> LogBounds:
        keys = await self._channel_keys(channel)
        if keys is None:
            # No story yet, so no slot to put the epoch in: keep a provisional one that the
            # story's first append adopts.
            pending = self._pending_key(channel)
            await self.client.set(pending, _new_epoch(), nx=True, ex=PROVISIONAL_TTL)
            epoch = _str(await self.client.get(pending))
            return LogBounds(0, 0, epoch)
        first, last, epoch = await self._bounds_script(
            keys=list(keys), args=[_new_epoch(), PROVISIONAL_TTL]
        )
        return LogBounds(int(first), int(last), _str(epoch))

    async def read_log(self, channel: str, since: int, limit: int) -> list[LogEntry]:
        keys = await self._channel_keys(channel)
        if keys is None or limit <= 0:
            return []
        rows = await self.client.xrange(keys[1], min=f"{max(since, 0) + 1}-0", count=limit)
        return [
            LogEntry(channel, int(_str(entry_id).split("-", 1)[0]), json.loads(_str(body)))
            for entry_id, fields in rows or ()
            # a client made without decode_responses returns bytes field names
            if fields and (body := fields.get("e", fields.get(b"e"))) is not None
        ]

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()
