"""The embedded bus: subscribers live in this process, the SQLite store holds the log."""

from __future__ import annotations

from collections import defaultdict

from liveupdates.bus.base import Subscription
from liveupdates.models import LogEntry
from liveupdates.store.base import LogBounds, Store


class InMemoryBus:
    """Notifies subscriptions in this process; reads history from `store`.

    `publish` must be called by whoever wrote the entries, after the store committed them, so a
    subscriber that sees a hole can always fill it from the log.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    async def publish(self, entries: list[LogEntry]) -> None:
        by_channel: dict[str, list[LogEntry]] = defaultdict(list)
        for entry in entries:
            by_channel[entry.channel].append(entry)
        for channel, batch in by_channel.items():
            for sub in tuple(self._subs.get(channel, ())):
                sub.push(batch)

    async def subscribe(self, channel: str) -> Subscription:
        sub = Subscription(channel, self.store.read_log, self._forget)
        self._subs[channel].add(sub)
        # Listening before reading the position: see Subscription.start.
        sub.start((await self.store.log_bounds(channel)).last)
        return sub

    async def _forget(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.channel]

    async def read_since(self, channel: str, since: int, limit: int) -> list[LogEntry]:
        return await self.store.read_log(channel, since, limit)

    async def bounds(self, channel: str) -> LogBounds:
        return await self.store.log_bounds(channel)

    async def ping(self) -> None:
        """In process: it delivers whenever the store it reads can be read."""
        await self.store.ping()

    def subscriber_count(self, channel: str) -> int:
        """How many subscriptions listen to `channel` (lets tests check the one-per-channel rule)."""
        return len(self._subs.get(channel, ()))

    async def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.close()
        self._subs.clear()
