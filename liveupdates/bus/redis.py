"""The Redis bus: web processes follow the channel logs (Redis Streams) that the workers write.

How it reads
------------
The store's append script already writes every entry to its channel's stream, so publishing is
nothing more than that write: `publish` is a no-op, and a worker needs no bus at all.

Each process runs ONE reader task on ONE dedicated connection, whatever its number of clients:
`XREAD BLOCK <block> COUNT <n> STREAMS <stream of every channel followed here> <last seq read>`.
The hub holds one Subscription per channel per process, so each entry crosses the network once
per web process, not once per reader. A new channel is added by waking the blocked XREAD with
`CLIENT UNBLOCK` from the store's connection, so it is read at once, not after the block ends.

What the reader hands out is checked, not trusted:

- Epochs. Entry ids are seqs ("<seq>-0"), and a channel whose log was lost starts again at seq 1
  under a new epoch. After each read the reader compares the epochs of the channels it read
  (and of all channels every `epoch_check_seconds`, and after every reconnect) with the ones it
  started from; on a change, the channel's Subscriptions raise HistoryLost once (the hub then
  closes those clients; on resuming they get `reset`) and carry on in the new log.
- Connection loss. The reader reconnects with jittered exponential backoff and reads on from the
  last seq it delivered, so nothing that stayed in the log is missed; anything trimmed meanwhile
  is a hole the Subscription cannot fill, which it reports as HistoryLost, never skips.
- A story channel followed before its story exists has no stream key yet (its slot is its
  feed's, known at the first append); the reader looks again every `resolve_seconds`.

Redis Cluster: a multi-key XREAD needs all its streams in one hash slot. This reader issues one
XREAD over every stream, so it needs standalone Redis (or Sentinel); on Cluster it would have to
issue one XREAD per slot (per feed, given the per-feed hash tags).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from liveupdates.bus.base import Subscription
from liveupdates.models import LogEntry
from liveupdates.store.base import LogBounds
from liveupdates.store.redis import RedisStore

log = logging.getLogger(__name__)

# Most entries one XREAD returns per stream; the next read carries on after them.
READ_COUNT = 500
# The reader's socket must outlive a BLOCK; past this much more, the connection is presumed dead.
SOCKET_MARGIN = 5.0
# How long a wake-up of the blocked reader is retried (it may be just about to block).
UNBLOCK_TRIES = 50
UNBLOCK_PAUSE = 0.01


@dataclass(eq=False)
class _Channel:
    name: str
    subs: set[Subscription] = field(default_factory=set)
    keys: tuple[str, str] | None = None  # (counter hash, stream); None: story not stored yet
    epoch: str = ""
    cursor: int = 0  # last seq handed to the subscriptions (or the log's last at the start)
    ready: bool = False  # cursor and epoch set: the reader may read it


class RedisBus:
    """Bus over the RedisStore's channel streams, read once per process (see the module doc)."""

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        store: RedisStore,
        *,
        block_seconds: float = 5.0,
        epoch_check_seconds: float = 2.0,
        resolve_seconds: float = 0.25,
        backoff_min: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.store = store
        self.block_seconds = block_seconds
        self.epoch_check_seconds = epoch_check_seconds
        self.resolve_seconds = resolve_seconds
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._source = url_or_client
        self._reader_client: aioredis.Redis | None = None
        self._reader_id: int | None = None  # CLIENT ID of the reader's connection
        self._blocked = False  # the reader is (about to be) in XREAD BLOCK
        self._channels: dict[str, _Channel] = {}
        self._by_stream: dict[str, _Channel] = {}
        self._gen = 0  # bumped when a channel becomes readable
        self._reader_gen = 0  # the generation the reader's current XREAD was built from
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._kicker: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0  # times the reader lost Redis and came back (for tests and logs)

    # -- Bus Protocol ----------------------------------------------------------------------------

    async def publish(self, entries: list[LogEntry]) -> None:
        """Nothing to do: the store's append already wrote the entries to their streams."""

    async def subscribe(self, channel: str) -> Subscription:
        if self._closed:
            raise RuntimeError("bus closed")
        sub = Subscription(channel, self.store.read_log, self._forget)
        state = self._channels.get(channel)
        if state is not None:
            # Listening before reading the position: see Subscription.start.
            state.subs.add(sub)
            try:
                sub.start((await self.store.log_bounds(channel)).last)
            except BaseException:
                await sub.close()
                raise
            return sub
        state = self._channels[channel] = _Channel(channel, {sub})
        try:
            bounds = await self.store.log_bounds(channel)
            keys = await self.store.channel_keys(channel)
        except BaseException:
            await sub.close()
            raise
        # The reader starts at the position the log had when we looked, so nothing after it is
        # missed and nothing before it is delivered twice.
        state.epoch, state.cursor, state.ready = bounds.epoch, bounds.last, True
        self._set_keys(state, keys)
        sub.start(bounds.last)
        self._ensure_reader()
        self._kick()
        return sub

    async def read_since(self, channel: str, since: int, limit: int) -> list[LogEntry]:
        return await self.store.read_log(channel, since, limit)

    async def bounds(self, channel: str) -> LogBounds:
        return await self.store.log_bounds(channel)

    async def ping(self) -> None:
        # The reader's own connection sits in XREAD BLOCK; the store's answers for the server.
        if self._closed:
            raise RuntimeError("bus closed")
        await self.store.client.ping()

    async def close(self) -> None:
        self._closed = True
        for task in (self._reader, self._kicker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for state in list(self._channels.values()):
            for sub in list(state.subs):
                await sub.close()
        self._channels.clear()
        self._by_stream.clear()
        await self._drop_reader_client()

    # -- introspection (tests, ops) --------------------------------------------------------------

    def channels(self) -> list[str]:
        """Channels this process reads."""
        return list(self._channels)

    def subscriber_count(self, channel: str) -> int:
        state = self._channels.get(channel)
        return len(state.subs) if state else 0

    @property
    def reader_name(self) -> str:
        """CLIENT SETNAME of the reader's connection: one per process (see CLIENT LIST)."""
        # CLIENT SETNAME refuses spaces and odd characters, which a key prefix may contain.
        prefix = re.sub(r"[^A-Za-z0-9:._-]", "_", self.store.prefix)
        return f"lu-bus:{prefix}{os.getpid()}:{id(self):x}"

    # -- subscriptions -----------------------------------------------------------------------------

    def _set_keys(self, state: _Channel, keys: tuple[str, str] | None) -> None:
        state.keys = keys
        if keys is not None:
            self._by_stream[keys[1]] = state

    async def _forget(self, sub: Subscription) -> None:
        state = self._channels.get(sub.channel)
        if state is None:
            return
        state.subs.discard(sub)
        if not state.subs:
            # The reader drops the stream from its next XREAD; waking it for that is not needed.
            del self._channels[sub.channel]
            if state.keys is not None and self._by_stream.get(state.keys[1]) is state:
                del self._by_stream[state.keys[1]]

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_forever(), name="redis bus reader")

    def _kick(self) -> None:
        self._gen += 1
        self._changed.set()
        if self._kicker is None or self._kicker.done():
            self._kicker = asyncio.create_task(self._unblock(), name="redis bus wake-up")

    async def _unblock(self) -> None:
        """Wake a reader blocked on the old stream list, so a new channel is read right away."""
        for _ in range(UNBLOCK_TRIES):
            if self._reader_gen >= self._gen or self._closed:
                return
            reader_id = self._reader_id
            if reader_id is not None and self._blocked:
                try:
                    if await self.store.client.client_unblock(reader_id):
                        return
                except RedisError:
                    return  # Redis is away; the reconnecting reader rebuilds its list anyway
            await asyncio.sleep(UNBLOCK_PAUSE)

    # -- the reader --------------------------------------------------------------------------------

    async def _connect(self) -> aioredis.Redis:
        if self._reader_client is None:
            options: dict[str, Any] = {
                "decode_responses": True,
                "single_connection_client": True,
                "socket_timeout": self.block_seconds + SOCKET_MARGIN,
                "socket_keepalive": True,
                "client_name": self.reader_name,
            }
            source = self._source
            if isinstance(source, str):
                self._reader_client = aioredis.Redis.from_url(source, **options)
            else:
                kwargs = dict(source.connection_pool.connection_kwargs)
                for name in ("decode_responses", "socket_timeout", "socket_keepalive"):
                    kwargs[name] = options[name]
                kwargs["client_name"] = options["client_name"]
                # Not the source's retry on a new connection: this loop reconnects by itself,
                # since after a reconnect it needs its new client id and an epoch check.
                kwargs.pop("retry", None)
                pool = aioredis.ConnectionPool(
                    connection_class=source.connection_pool.connection_class, **kwargs
                )
                self._reader_client = aioredis.Redis(
                    connection_pool=pool, single_connection_client=True
                )
                # Closing the client must close the pool it was given.
                self._reader_client.auto_close_connection_pool = True
        client = self._reader_client
        self._reader_id = int(await client.client_id())
        return client

    async def _drop_reader_client(self) -> None:
        client, self._reader_client = self._reader_client, None
        self._reader_id = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _read_forever(self) -> None:
        backoff = self.backoff_min
        lost = False  # one line when Redis goes away and one when it is back, not one per retry
        while not self._closed:
            try:
                client = await self._connect()
                # After a (re)connect the log may have been lost (Redis restarted empty).
                await self._check_epochs(list(self._channels.values()))
                backoff = self.backoff_min
                if lost:
                    lost = False
                    log.warning("redis bus reconnected to Redis")
                await self._read_loop(client)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if not lost:
                    lost = True
                    log.warning("redis bus lost Redis (%s); reconnecting with backoff", exc)
            except Exception:
                log.exception("redis bus reader failed; restarting in %.1fs", backoff)
            self._blocked = False
            await self._drop_reader_client()
            if self._closed:
                return
            self.reconnects += 1
            # Jittered, so many web processes do not all come back at the same instant.
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.backoff_max)

    async def _read_loop(self, client: aioredis.Redis) -> None:
        next_check = time.monotonic() + self.epoch_check_seconds
        next_resolve = 0.0
        while not self._closed:
            self._changed.clear()
            now = time.monotonic()
            pending = [s for s in self._channels.values() if s.ready and s.keys is None]
            if pending and now >= next_resolve:
                await self._resolve(pending)
                next_resolve = now + self.resolve_seconds
            if now >= next_check:
                await self._check_epochs(list(self._channels.values()))
                next_check = now + self.epoch_check_seconds
            self._reader_gen = self._gen
            streams: dict[Any, Any] = {
                s.keys[1]: f"{s.cursor}-0"
                for s in self._channels.values()
                if s.ready and s.keys is not None
            }
            wait = self.block_seconds
            if pending:
                wait = min(wait, self.resolve_seconds)
            wait = max(0.001, min(wait, next_check - time.monotonic()))
            if not streams:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
                continue
            self._blocked = True
            try:
                reply = await client.xread(streams, count=READ_COUNT, block=int(wait * 1000))
            finally:
                self._blocked = False
            if reply:
                await self._deliver(reply)

    async def _deliver(self, reply: Any) -> None:
        if isinstance(reply, dict):  # RESP3 answers a map
            reply = list(reply.items())
        batches: list[tuple[_Channel, list[LogEntry]]] = []
        for stream, rows in reply:
            state = self._by_stream.get(stream)
            if state is None:
                continue  # nobody here follows it any more
            entries = [
                LogEntry(state.name, int(entry_id.split("-", 1)[0]), json.loads(fields["e"]))
                for entry_id, fields in rows
                if "e" in fields
            ]
            if entries:
                batches.append((state, entries))
        if not batches:
            return
        # An epoch that is still the one we started from was also the one when we read: epochs
        # never come back. So this check after the read proves the entries continue our log.
        changed = await self._check_epochs([state for state, _ in batches])
        for state, entries in batches:
            if state in changed:
                continue
            state.cursor = max(state.cursor, entries[-1].seq)
            for sub in tuple(state.subs):
                sub.push(entries)

    async def _resolve(self, pending: list[_Channel]) -> None:
        for state in pending:
            keys = await self.store.channel_keys(state.name)
            if keys is not None and self._channels.get(state.name) is state:
                self._set_keys(state, keys)

    async def _check_epochs(self, states: list[_Channel]) -> set[_Channel]:
        """Channels whose log was replaced since we started reading them (handled here)."""
        states = [s for s in states if s.ready and s.keys is not None]
        if not states:
            return set()
        async with self.store.client.pipeline(transaction=False) as pipe:
            for state in states:
                assert state.keys is not None
                pipe.hget(state.keys[0], "epoch")
            epochs = await pipe.execute()
        changed = set()
        for state, epoch in zip(states, epochs, strict=True):
            if isinstance(epoch, bytes):
                epoch = epoch.decode()
            if epoch != state.epoch:
                changed.add(state)
                await self._lost(state)
        return changed

    async def _lost(self, state: _Channel) -> None:
        bounds = await self.store.log_bounds(state.name)
        log.warning(
            "channel %s: log replaced (epoch %s -> %s); its readers reset",
            state.name,
            state.epoch,
            bounds.epoch,
        )
        state.epoch, state.cursor = bounds.epoch, bounds.last
        for sub in tuple(state.subs):
            sub.lose(bounds.last)
