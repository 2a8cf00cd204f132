"""Embedded backends (`sqlite://...`): one process, a SQLite file, everything else in memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from liveupdates.backends.availability import Availability
from liveupdates.backends.base import Backends, Grant, Signal
from liveupdates.bus.memory import InMemoryBus
from liveupdates.store.devices_sqlite import SQLiteDeviceStore
from liveupdates.store.sqlite import SQLiteStore
from liveupdates.store.websub_sqlite import SQLiteWebSubStore


def open_backends(url: str, *, log_retention: int | None, prefix: str) -> Backends:
    store = SQLiteStore(url.removeprefix("sqlite://") or ":memory:", log_retention=log_retention)
    return Backends(
        mode="embedded",
        store=store,
        bus=InMemoryBus(store),
        claims=LocalClaims(),
        signals=LocalSignals(),
        devices=SQLiteDeviceStore(store),
        websub=SQLiteWebSubStore(store),
        availability=Availability("sqlite store"),
    )


@dataclass(slots=True)
class _Claim:
    due: float | None = None
    held_until: float = 0.0
    requested: bool = False


class LocalClaims:
    """Claims of a process that owns every feed: granted whenever no poll of the feed holds its
    lease (due times are kept for show; the process's own schedule decides when to poll)."""

    def __init__(self) -> None:
        self._claims: dict[str, _Claim] = {}

    async def claim(self, feed_id: str, lease_seconds: float, *, force: bool = False) -> Grant:
        now = time.time()
        c = self._claims.setdefault(feed_id, _Claim())
        if c.held_until > now:
            return Grant.REFUSED
        requested, c.requested = c.requested, False
        c.due = c.held_until = now + lease_seconds
        return Grant.REQUESTED if requested else Grant.GRANTED

    async def release(self, feed_id: str, next_due_unix: float) -> None:
        c = self._claims.setdefault(feed_id, _Claim())
        c.due, c.held_until = next_due_unix, 0.0

    async def hasten(self, feed_id: str, at_unix: float) -> None:
        c = self._claims.setdefault(feed_id, _Claim())
        if c.due is None or c.due > at_unix:
            c.due = at_unix

    async def request(self, feed_id: str) -> None:
        self._claims.setdefault(feed_id, _Claim()).requested = True

    async def due(self, feed_id: str) -> float | None:
        c = self._claims.get(feed_id)
        return None if c is None else c.due

    async def forget(self, feed_id: str) -> None:
        self._claims.pop(feed_id, None)


class LocalSignals:
    """Signals within this process: one queue per listener."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Signal]] = set()

    async def send(self, signal: Signal) -> None:
        for queue in tuple(self._queues):
            queue.put_nowait(signal)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[AsyncIterator[Signal]]:
        queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._queues.add(queue)

        async def received() -> AsyncIterator[Signal]:
            while True:
                yield await queue.get()

        try:
            yield received()
        finally:
            self._queues.discard(queue)

    async def close(self) -> None:
        self._queues.clear()
