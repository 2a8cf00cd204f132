"""Scale-out backends (`redis://...`, `rediss://...`, `unix://...`): every process shares one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from liveupdates.backends.availability import Availability
from liveupdates.backends.base import Backends, Grant, Signal, SignalKind
from liveupdates.bus.redis import RedisBus
from liveupdates.store.devices_redis import RedisDeviceStore
from liveupdates.store.redis import RedisStore
from liveupdates.store.redisclient import open_client
from liveupdates.store.websub_redis import RedisWebSubStore

log = logging.getLogger(__name__)


def open_backends(url: str, *, log_retention: int | None, prefix: str) -> Backends:
    store = RedisStore(url, prefix=prefix, log_retention=log_retention)
    availability = Availability("redis")
    return Backends(
        mode="redis",
        store=store,
        bus=RedisBus(url, store),
        claims=RedisClaims(store.client, prefix),
        signals=RedisSignals(url, prefix, availability=availability),
        devices=RedisDeviceStore(store),
        websub=RedisWebSubStore(store),
        availability=availability,
    )


# Every feed's claim is one field of one hash, "<due or -> <lease end> <requested 0|1>": a single
# key, so each script is atomic and Cluster-safe.
_READ = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
local due, held, req = nil, 0, 0
if v then
  local a, b, c = string.match(v, '^(%S+) (%S+) (%S+)$')
  due = tonumber(a)
  held = tonumber(b) or 0
  req = tonumber(c) or 0
end
local function put(d, h, r)
  local ds = '-'
  if d then ds = string.format('%.6f', d) end
  redis.call('HSET', KEYS[1], ARGV[1], ds .. ' ' .. string.format('%.6f', h) .. ' ' .. r)
end
"""

# ARGV: 1 feed id, 2 now, 3 lease, 4 force ('1' or '0').
_CLAIM = (
    _READ
    + """
local now = tonumber(ARGV[2])
if held > now then return 0 end
if ARGV[4] ~= '1' and req ~= 1 and due and due > now then return 0 end
local lease_end = now + tonumber(ARGV[3])
put(lease_end, lease_end, 0)
if req == 1 then return 2 end
return 1
"""
)

# ARGV: 1 feed id, 2 next due.
_RELEASE = _READ + "put(tonumber(ARGV[2]), 0, req)\nreturn 1\n"

# ARGV: 1 feed id, 2 at.
_HASTEN = (
    _READ
    + """
local at = tonumber(ARGV[2])
if due == nil or due > at then put(at, held, req) end
return 1
"""
)

# ARGV: 1 feed id.
_REQUEST = _READ + "put(due, held, 1)\nreturn 1\n"


class RedisClaims:
    """Claims shared by every worker through one Redis hash (see liveupdates.backends.base)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "lu:") -> None:
        self.client = client
        self.key = f"{prefix}poll-claims"
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._hasten = client.register_script(_HASTEN)
        self._request = client.register_script(_REQUEST)

    async def claim(self, feed_id: str, lease_seconds: float, *, force: bool = False) -> Grant:
        granted = await self._claim(
            keys=[self.key], args=[feed_id, repr(time.time()), repr(lease_seconds), int(force)]
        )
        return Grant(int(granted))

    async def release(self, feed_id: str, next_due_unix: float) -> None:
        await self._release(keys=[self.key], args=[feed_id, repr(next_due_unix)])

    async def hasten(self, feed_id: str, at_unix: float) -> None:
        await self._hasten(keys=[self.key], args=[feed_id, repr(at_unix)])

    async def request(self, feed_id: str) -> None:
        await self._request(keys=[self.key], args=[feed_id])

    async def due(self, feed_id: str) -> float | None:
        value = await self.client.hget(self.key, feed_id)
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        due = text.split(" ", 1)[0]
        return None if due == "-" else float(due)

    async def forget(self, feed_id: str) -> None:
        await self.client.hdel(self.key, feed_id)


class RedisSignals:
    """Signals over one Redis pub/sub channel; each listener holds its own connection.

    Pub/sub delivers at most once and only while connected, so a listener that lost its
    connection (or whose client re-subscribed by itself) gets RESYNC once it hears again.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        prefix: str = "lu:",
        *,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
        availability: Availability | None = None,
    ) -> None:
        self.client = (
            open_client(url_or_client) if isinstance(url_or_client, str) else url_or_client
        )
        self._owns_client = isinstance(url_or_client, str)
        self.channel = f"{prefix}signals"
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        # Where a lost connection is reported (one line per outage for the whole process).
        self.availability = availability if availability is not None else Availability("redis")

    async def send(self, signal: Signal) -> None:
        await self.client.publish(self.channel, signal.encode())

    async def _subscribed(self) -> Any:
        """A pubsub whose subscription the server has confirmed (so nothing later is missed)."""
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None and message["type"] == "subscribe":
                    return pubsub
        except BaseException:
            await pubsub.aclose()
            raise

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[AsyncIterator[Signal]]:
        listener = _Listener(self, await self._subscribed())
        try:
            yield listener.received()
        finally:
            # Closing the connection also ends a read blocked on it in another task.
            listener.closed = True
            await listener.pubsub.aclose()

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


class _Listener:
    def __init__(self, signals: RedisSignals, pubsub: Any) -> None:
        self.signals = signals
        self.pubsub = pubsub
        self.closed = False

    async def received(self) -> AsyncIterator[Signal]:
        backoff = self.signals.backoff_min
        while not self.closed:
            try:
                message = await self.pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                if self.closed:
                    return
                if not self.signals.availability.failed(exc):
                    log.warning("signals: lost Redis (%s); reconnecting", exc)
                await self.pubsub.aclose()
                while not self.closed:
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, self.signals.backoff_max)
                    try:
                        self.pubsub = await self.signals._subscribed()
                        break
                    except (RedisError, OSError) as again:
                        self.signals.availability.failed(again)
                        continue
                self.signals.availability.answered()
                backoff = self.signals.backoff_min
                yield Signal(SignalKind.RESYNC)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                # The client reconnected and subscribed again by itself: notices sent in
                # between are lost.
                yield Signal(SignalKind.RESYNC)
            elif message["type"] == "message":
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                signal = Signal.decode(text)
                if signal is not None:
                    yield signal
