"""Who polls a feed next: claims on a shared due time, so N workers poll each feed once.

Every worker keeps an APScheduler job for every feed (workers/poller.py). When a job fires it
asks `claim(feed, lease)`: granted only if the feed is due (its shared due time has passed), and
the grant pushes the due time to now + lease, so any other worker asking meanwhile is refused.
The winner polls, then `release(feed, next_due)` sets the due time to its next planned poll. A
loser reschedules its own job at `due(feed)` plus a little jitter, but never more than one
interval ahead, and asks again then. The holder's own job fires at the due time itself, so it
keeps its feeds while it lives.

Lease and pickup bound
----------------------
The lease must outlast a poll's worst case (the fetch's total timeout plus parsing and the store
writes), or a slow poll could be joined by a second worker (harmless for the data: the store's
versioned append makes one version, but it is a wasted fetch). A worker that dies without
releasing leaves its feed due at most `lease` seconds after its claim; the others, checking at
least once per interval, take it then. So a dead worker's feed is polled again no later than
max(its planned next poll, claim + lease) + jitter: a worker that dies between polls delays
nothing (the due time it released stands, and the others check just after it); one that dies
mid-poll delays its feeds by at most one lease (fetch total timeout + LEASE_MARGIN: 30 s with
the defaults).

Times are unix seconds from each worker's clock; keep workers' clocks in sync (NTP): a clock s
seconds ahead claims feeds up to s seconds early.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import redis.asyncio as aioredis

from liveupdates.store.base import Store

# Added to the fetch's total timeout to make the lease: the store writes after the fetch, and a
# loaded event loop, must fit in it too.
LEASE_MARGIN = 10.0


def lease_for(fetch_total_timeout: float) -> float:
    """How long a claim holds a feed: longer than one poll can take."""
    return fetch_total_timeout + LEASE_MARGIN


@runtime_checkable
class Claims(Protocol):
    async def claim(self, feed_id: str, lease_seconds: float, *, force: bool = False) -> bool:
        """True if this worker may poll the feed now (it is due, or `force`: an ops "poll now").

        A grant holds the feed for `lease_seconds`: until then nobody else is granted it unless
        it is released.
        """
        ...

    async def release(self, feed_id: str, next_due_unix: float) -> None:
        """Set when the feed is next due (ends a lease held on it)."""
        ...

    async def due(self, feed_id: str) -> float | None:
        """When the feed is next due (unix seconds); None if nobody has claimed it yet."""
        ...

    async def forget(self, feed_id: str) -> None:
        """The feed was removed or paused: drop its due time (it starts afresh if it returns)."""
        ...


class LocalClaims:
    """One worker (embedded mode): every claim is granted; due times are kept for show."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}

    async def claim(self, feed_id: str, lease_seconds: float, *, force: bool = False) -> bool:
        self._due[feed_id] = time.time() + lease_seconds
        return True

    async def release(self, feed_id: str, next_due_unix: float) -> None:
        self._due[feed_id] = next_due_unix

    async def due(self, feed_id: str) -> float | None:
        return self._due.get(feed_id)

    async def forget(self, feed_id: str) -> None:
        self._due.pop(feed_id, None)


# KEYS: 1 due zset. ARGV: 1 feed id, 2 now, 3 lease, 4 force ('1' or '0').
# One sorted set of due times: a single key, so the script is atomic and Cluster-safe.
_CLAIM = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
if ARGV[4] ~= '1' and due and tonumber(due) > now then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""


class RedisClaims:
    """Claims shared by every worker through one sorted set: feed id scored by its due time."""

    def __init__(self, client: aioredis.Redis, prefix: str = "lu:") -> None:
        self.client = client
        self.key = f"{prefix}poll-due"
        self._claim = client.register_script(_CLAIM)

    async def claim(self, feed_id: str, lease_seconds: float, *, force: bool = False) -> bool:
        granted = await self._claim(
            keys=[self.key], args=[feed_id, repr(time.time()), repr(lease_seconds), int(force)]
        )
        return int(granted) == 1

    async def release(self, feed_id: str, next_due_unix: float) -> None:
        await self.client.zadd(self.key, {feed_id: next_due_unix})

    async def due(self, feed_id: str) -> float | None:
        score = await self.client.zscore(self.key, feed_id)
        return None if score is None else float(score)

    async def forget(self, feed_id: str) -> None:
        await self.client.zrem(self.key, feed_id)


def claims_for(store: Store) -> Claims:
    """Shared claims when the store is shared (Redis); always-granting ones otherwise."""
    from liveupdates.store.redis import RedisStore

    if isinstance(store, RedisStore):
        return RedisClaims(store.client, store.prefix)
    return LocalClaims()
