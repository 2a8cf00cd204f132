"""The Bus Protocol and the gapless Subscription every backend hands out.

A backend only has to push raw entries into a Subscription (`Subscription.push`) in whatever order
they arrive, possibly twice, possibly with holes. The Subscription turns that into what the hub
relies on: each channel's entries exactly once, in seq order, with holes filled from the log.
Keeping that rule here, not in each backend, is what lets a Redis bus pass the same contract.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from liveupdates.models import LogEntry
from liveupdates.store.base import LogBounds

# Most entries fetched from the log in one go when filling a hole.
GAP_FILL_BATCH = 500


class HistoryLost(Exception):
    """A hole in the live stream could not be filled: the log no longer holds those entries.

    Raised from `Subscription.__anext__`; `position` is where the subscription now stands (the log's
    last seq when it gave up), so a consumer can tell its readers to reset and carry on from there.
    """

    def __init__(self, channel: str, expected: int, position: int) -> None:
        super().__init__(f"{channel}: entries after seq {expected - 1} are no longer in the log")
        self.channel = channel
        self.expected = expected
        self.position = position


ReadSince = Callable[[str, int, int], Awaitable[list[LogEntry]]]
Bounds = Callable[[str], Awaitable[LogBounds]]


class Subscription:
    """Live entries of one channel, as an async iterator of non-empty, ascending, gapless batches.

    `position` is the last seq handed out (or, before the first batch, the log's last seq when the
    subscription started): everything up to it is in the log, everything after it will be yielded.
    """

    def __init__(
        self,
        channel: str,
        read_since: ReadSince,
        on_close: Callable[[Subscription], Awaitable[None]],
    ) -> None:
        self.channel = channel
        self.position: int | None = None  # set by start(); entries arriving before wait here
        self._read_since = read_since
        self._on_close = on_close
        self._inbox: deque[LogEntry] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._lost: HistoryLost | None = None  # raised once by __anext__, set by lose()

    # -- backend side ------------------------------------------------------------------------------

    def push(self, entries: list[LogEntry]) -> None:
        """Hand over raw entries for this channel. Synchronous and cheap: called per publish."""
        if self._closed:
            return
        self._inbox.extend(e for e in entries if e.channel == self.channel)
        if self._inbox:
            self._wakeup.set()

    def start(self, position: int) -> None:
        """Fix where the subscription begins: the log's last seq read AFTER it began to listen.

        Listening first and reading the position second means nothing appended in between can be
        missed; anything pushed meanwhile with seq <= position is simply dropped as already logged.
        """
        self.position = position
        if self._inbox:
            self._wakeup.set()

    def lose(self, position: int) -> None:
        """The log was replaced under a new epoch (lost and started again): its seqs restarted.

        Entries of the new log must not pass as the continuation of the old one, so the consumer
        gets HistoryLost once and the subscription then carries on after `position`, the new
        log's last seq.
        """
        if self._closed:
            return
        self._inbox.clear()
        expected = (self.position or 0) + 1
        self._lost = HistoryLost(self.channel, expected, position)
        self.position = position
        self._wakeup.set()

    # -- consumer side -----------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> list[LogEntry]:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._lost is not None:
                lost, self._lost = self._lost, None
                raise lost
            if self.position is not None and self._inbox:
                batch = await self._take()
                if batch:
                    return batch
                continue
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _take(self) -> list[LogEntry]:
        assert self.position is not None
        raw = sorted(self._inbox, key=lambda e: e.seq)
        self._inbox.clear()
        batch: list[LogEntry] = []
        expected = self.position + 1
        for entry in raw:
            if entry.seq < expected:
                continue  # a duplicate, or already in the log when we started
            if entry.seq > expected:
                # A hole: the entries are in the log (they were appended before this one was
                # published), so read them instead of skipping ahead.
                filled = await self._fill(expected, entry.seq - 1, raw[-1].seq)
                batch.extend(filled)
                expected = entry.seq
            batch.append(entry)
            expected = entry.seq + 1
        if batch:
            self.position = batch[-1].seq
        return batch

    async def _fill(self, first: int, last: int, newest: int) -> list[LogEntry]:
        out: list[LogEntry] = []
        since = first - 1
        while since < last:
            chunk = await self._read_since(self.channel, since, min(GAP_FILL_BATCH, last - since))
            if not chunk or chunk[0].seq != since + 1:
                # Trimmed by retention (or lost): tell the consumer rather than leave a silent gap,
                # and carry on after the newest entry we were handed.
                self.position = newest
                raise HistoryLost(self.channel, since + 1, self.position)
            out.extend(e for e in chunk if e.seq <= last)
            since = chunk[-1].seq
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        self._wakeup.set()
        await self._on_close(self)


@runtime_checkable
class Bus(Protocol):
    async def publish(self, entries: list[LogEntry]) -> None:
        """Announce entries just written by `Store.append_version` (any channels, any order)."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Start listening to a channel. The hub holds one subscription per channel per process."""
        ...

    async def read_since(self, channel: str, since: int, limit: int) -> list[LogEntry]:
        """Entries with seq > since, ascending, at most `limit` (the store's log)."""
        ...

    async def bounds(self, channel: str) -> LogBounds: ...

    async def ping(self) -> None:
        """Raises if the bus cannot deliver now (health checks); cheap, writes nothing."""
        ...

    async def close(self) -> None:
        """End every subscription. The store is the caller's to close."""
        ...
