"""The device-push part of the store: devices, what they follow, and the dispatcher's own state.

A small Protocol of its own, implemented next to each backend (devices_sqlite.py,
devices_redis.py) over the main store object's connection, and checked by one contract suite
(tests/test_devices_store_contract.py). Each backend file (liveupdates/backends/) builds it as the
`devices` part of `Backends`.

What it keeps:
- devices (one per platform and address: registering again finds the same id) with the hash of
  their bearer secret and when they were last seen (a delivery or an API call);
- subscriptions: (device, channel) -> notify "major" | "all", listed per device and paged per
  channel (`followers`), so a story followed by 100,000 devices is read a page at a time;
- per channel, the dispatcher's cursor in the channel's log (`Cursor`);
- per (device, story), the coalescing state (a JSON-able dict the dispatcher's pure logic in
  liveupdates/push/coalesce.py owns; the store only reads its "due" entry) and an index of the
  states due for a send. `take_due` leases what it hands out, so several dispatcher processes
  never send the same state at once;
- the VAPID key, kept once (`keep_vapid_key` is set-if-absent), and sent / failed / removed
  counters per provider.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from liveupdates.models import NOTIFY_VALUES, Device, Notify

__all__ = [
    "NOTIFY_VALUES",
    "Cursor",
    "DeviceRecord",
    "DeviceStore",
    "Follower",
    "FollowerPage",
    "Notify",
    "QueueStats",
    "State",
    "StateKey",
    "StateUpdate",
    "SubscriptionLimit",
]
StateKey = tuple[str, str]  # (device id, story id)
State = dict[str, Any]
# Given a key and its current state (None: none yet), the new state (None: delete it). Pure: a
# backend may call it again with a newer state when another process wrote meanwhile.
StateUpdate = Callable[[StateKey, State | None], State | None]


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device: Device
    secret_hash: str
    seen_at: float  # unix time of the last delivery or API call


@dataclass(frozen=True, slots=True)
class Follower:
    device_id: str
    notify: Notify


@dataclass(frozen=True, slots=True)
class FollowerPage:
    followers: list[Follower]
    next_after: str | None  # pass as `after` for the next page; None: this was the last


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the dispatcher stands in a channel's log: everything up to `seq` is handled."""

    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int  # states waiting for a send (due now or later, or in flight)
    oldest_due: float | None  # unix time the earliest of them is due


class SubscriptionLimit(Exception):
    """The device already follows the most channels it may."""


@runtime_checkable
class DeviceStore(Protocol):
    # -- devices ---------------------------------------------------------------------------------

    async def register(self, device: Device, secret_hash: str, now: float) -> str:
        """Store the device and return its id: the id already given to this platform and address
        if there is one (its keys, environment and secret are replaced), else `device.id`."""
        ...

    async def get(self, device_id: str) -> DeviceRecord | None: ...

    async def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        """The records of those of `device_ids` that exist, in one store call (the dispatcher
        reads a page of sends' devices at a time)."""
        ...

    async def touch(self, device_id: str, now: float) -> None:
        """The device was seen now (an API call or a delivery)."""
        ...

    async def delete(self, device_id: str) -> bool:
        """Forget the device, its subscriptions and its states; False when it was unknown."""
        ...

    async def expire(self, seen_before: float) -> int:
        """Delete every device last seen before `seen_before`; how many were deleted."""
        ...

    async def platform_counts(self) -> dict[str, int]: ...

    # -- subscriptions ---------------------------------------------------------------------------

    async def subscribe(self, device_id: str, channel: str, notify: Notify, limit: int) -> None:
        """Follow `channel` (or change how). Raises SubscriptionLimit when the device follows
        `limit` other channels already."""
        ...

    async def unsubscribe(self, device_id: str, channel: str) -> bool: ...

    async def subscriptions(self, device_id: str) -> list[tuple[str, Notify]]:
        """(channel, notify) of every channel the device follows, by channel."""
        ...

    async def followers(self, channel: str, after: str | None, limit: int) -> FollowerPage:
        """At most `limit` followers of the channel, after the page `after` ended (None: first)."""
        ...

    async def channels(self) -> list[str]:
        """Every channel at least one device follows."""
        ...

    # -- the dispatcher's position ----------------------------------------------------------------

    async def get_cursor(self, channel: str) -> Cursor | None: ...

    async def set_cursor(self, channel: str, cursor: Cursor) -> None: ...

    async def init_cursor(self, channel: str, cursor: Cursor) -> None:
        """Set the cursor only if the channel has none (a first follower starts from now)."""
        ...

    async def claim_channel(self, channel: str, owner: str, seconds: float) -> bool:
        """True for one owner at a time per channel, across processes, for `seconds` from now;
        the owner holding the claim may call again to extend it."""
        ...

    async def release_channel(self, channel: str, owner: str) -> None:
        """End `owner`'s claim (a claim another owner holds stays)."""
        ...

    # -- coalescing states and the send queue ------------------------------------------------------

    async def update_states(
        self, keys: Sequence[StateKey], update: StateUpdate
    ) -> dict[StateKey, State | None]:
        """Apply `update` to each key's state, atomically per call, and index the new states by
        their "due" (unix time; None or absent: nothing to send). A state whose due is unchanged
        keeps its place and lease in the queue. Returns the new states."""
        ...

    async def get_state(self, key: StateKey) -> State | None: ...

    async def take_due(self, now: float, limit: int, lease: float) -> list[tuple[StateKey, State]]:
        """Up to `limit` states due by `now` and not leased, earliest first, each leased to this
        caller for `lease` seconds (an update that changes its due ends the lease)."""
        ...

    async def queue_stats(self) -> QueueStats: ...

    # -- keys and counters -------------------------------------------------------------------------

    async def keep_vapid_key(self, private_pem: str) -> str:
        """Keep `private_pem` unless a key is kept already; return the kept one."""
        ...

    async def count(self, provider: str, outcome: str, n: int = 1) -> None:
        """Add to a counter: outcome is "sent", "failed" or "removed"."""
        ...

    async def counters(self) -> dict[str, dict[str, int]]:
        """provider -> outcome -> count."""
        ...
