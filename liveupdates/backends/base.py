"""What every backend gives a process: the parts of `Backends`, and the two Protocols that live here.

A backend (sqlite.py, redis.py) is one file that builds every part for its URL. Adding a part is
one field on `Backends` and one line in each backend file; `Backends.close` closes the parts in
reverse order, so a part may rely on the ones listed before it (the bus reads the store).

Claims: who polls a feed next
-----------------------------
Several workers share the feeds: every worker has a job for every feed, but a job polls only if
its claim is granted. A claim is refused while another poll of the feed holds the feed's lease,
and (for shared claims) while the feed is not yet due. `release` ends the lease and sets when the
feed is next due. The lease must outlast a poll's worst case (`lease_for`): a worker that dies
mid-poll holds its feeds for at most one lease.

An ops "poll now" either polls at once where a scheduler runs (`claim(force=True)`: granted even if
not due, never while a lease is held) or, from a process without one, `request`s the poll: the next
claim of the feed is then granted whatever its due time and reports `Grant.REQUESTED`, so exactly
one worker polls and announces it (`Signal.POLLED`).

Times are unix seconds from each worker's clock; keep workers' clocks in sync (NTP).

Signals: what processes tell each other
---------------------------------------
Small notices, at most once, to every listening process: the feed list changed (`FEEDS`), a poll
was requested (`POLL`), a requested poll ended (`POLLED`). A listener that may have missed some
(its connection dropped) gets `RESYNC` and re-reads what it follows, so it converges anyway.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from typing import Any, Protocol

from liveupdates.backends.availability import Availability
from liveupdates.bus.base import Bus
from liveupdates.store.base import Store
from liveupdates.store.devices import DeviceStore
from liveupdates.store.websub import WebSubStore

# Added to the fetch's total timeout to make the lease: the store writes after the fetch, and a
# loaded event loop, must fit in it too.
LEASE_MARGIN = 10.0


def lease_for(fetch_total_timeout: float) -> float:
    """How long a claim holds a feed: longer than one poll can take."""
    return fetch_total_timeout + LEASE_MARGIN


class Grant(enum.IntEnum):
    """A claim's answer; falsy when refused."""

    REFUSED = 0
    GRANTED = 1
    REQUESTED = 2  # granted, and it consumed a "poll now" request: announce the poll's end


class Claims(Protocol):
    async def claim(self, feed_id: str, lease_seconds: float, *, force: bool = False) -> Grant:
        """May this process poll the feed now? Never while a lease is held on it; otherwise if it
        is due, requested, or `force`d. A grant holds the lease for `lease_seconds`."""
        ...

    async def release(self, feed_id: str, next_due_unix: float) -> None:
        """End the lease and set when the feed is next due."""
        ...

    async def hasten(self, feed_id: str, at_unix: float) -> None:
        """Bring the due time forward to `at_unix` (an ops change); never push it back, never
        touch a lease."""
        ...

    async def request(self, feed_id: str) -> None:
        """Ask for a poll: the next claim is granted whatever the due time (Grant.REQUESTED)."""
        ...

    async def due(self, feed_id: str) -> float | None:
        """When the feed is next due (unix seconds); None if nobody has claimed it yet."""
        ...

    async def forget(self, feed_id: str) -> None:
        """The feed was removed or paused: drop its due time (it starts afresh if it returns)."""
        ...


class SignalKind(enum.StrEnum):
    FEEDS = "feeds"  # the feed list changed in the store
    POLL = "poll"  # a poll of `feed_id` was requested (Claims.request)
    POLLED = "polled"  # a requested poll of `feed_id` ended; its outcome is in the store
    RESYNC = "resync"  # local only: notices may have been missed; re-read what you follow


@dataclass(frozen=True, slots=True)
class Signal:
    kind: SignalKind
    feed_id: str = ""

    def encode(self) -> str:
        return f"{self.kind.value} {self.feed_id}"

    @classmethod
    def decode(cls, text: str) -> Signal | None:
        kind, _, feed_id = text.partition(" ")
        try:
            return cls(SignalKind(kind), feed_id)
        except ValueError:
            return None  # from a newer version: not ours to act on


class Signals(Protocol):
    async def send(self, signal: Signal) -> None:
        """Tell every listener, in every process (this one included)."""
        ...

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[Signal]]:
        """Listen from when the block is entered (nothing sent after that is missed, unless a
        RESYNC says so) until it exits."""
        ...

    async def close(self) -> None: ...


@dataclass
class Backends:
    """Everything a process stores in or talks through, for one URL (see liveupdates.backends)."""

    mode: str  # "embedded" or "redis"
    store: Store
    bus: Bus
    claims: Claims
    signals: Signals
    websub: WebSubStore  # WebSub subscriptions and queued pushes, beside the store's data
    devices: DeviceStore  # device push: devices, subscriptions, the dispatcher's state
    # Whether the parts above answer; the process's one "unavailable" / "back" log line each.
    availability: Availability

    async def close(self) -> None:
        """Close every part, last first (the bus reads the store, so the store closes last)."""
        for part in reversed([getattr(self, f.name) for f in fields(self)]):
            close: Any = getattr(part, "close", None)
            if close is not None:
                await close()
