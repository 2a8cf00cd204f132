"""The WebSub part of the store: push subscriptions and pushed bodies waiting to be ingested.

A small Protocol of its own, implemented next to each backend (websub_sqlite.py,
websub_redis.py) over the main store object's connection, and checked by one contract suite
(tests/test_websub_store_contract.py). `websub_store_for(store)` picks the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from liveupdates.store.base import Store

# pending: asked the hub, not verified yet; active: verified, until `expires_at`; denied: the hub
# said no; failed: the hub could not be reached or refused (`reason`); unsubscribing: we asked
# the hub to stop (kept until the hub verifies, so its unsubscribe check can be answered).
SubState = Literal["pending", "active", "denied", "failed", "unsubscribing"]


@dataclass(slots=True)
class Subscription:
    feed_id: str
    hub: str
    topic: str
    secret: str
    token: str
    state: SubState = "pending"
    reason: str | None = None
    lease_seconds: int = 0  # asked for, or granted once active
    expires_at: float | None = None  # unix; set while active
    requested_at: float = 0.0  # unix time of the last request sent to the hub
    # Counters, kept by record_push only (put never changes them).
    pushes: int = 0
    bad_signatures: int = 0
    last_push_at: str | None = None


@dataclass(slots=True)
class PushedBody:
    """A verified pushed body waiting for the worker that ingests it."""

    feed_id: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    received_at: float = 0.0


@runtime_checkable
class WebSubStore(Protocol):
    async def get(self, feed_id: str) -> Subscription | None: ...

    async def list(self) -> list[Subscription]: ...

    async def put(self, sub: Subscription) -> None:
        """Create or replace the subscription of `sub.feed_id`, keeping its counters."""
        ...

    async def delete(self, feed_id: str) -> None: ...

    async def record_push(self, feed_id: str, *, valid: bool, at: str) -> None:
        """Count one push of a known subscription: a valid one (and when), or a bad signature."""
        ...

    async def claim_action(self, feed_id: str, seconds: float) -> bool:
        """True for exactly one caller per `seconds` per feed, across processes: who (re)subscribes
        or unsubscribes it now."""
        ...

    async def release_action(self, feed_id: str) -> None:
        """End this process's claim_action early (its request is done)."""
        ...

    async def enqueue_push(self, push: PushedBody) -> None: ...

    async def take_pushes(self, limit: int, wait: float) -> list[PushedBody]:
        """Remove and return up to `limit` queued pushes, oldest first; each is returned to one
        caller only. Waits up to `wait` seconds when the queue is empty."""
        ...


def websub_store_for(store: Store) -> WebSubStore:
    """The WebSub part that lives beside `store` (same database, same connection)."""
    from liveupdates.store.redis import RedisStore
    from liveupdates.store.sqlite import SQLiteStore

    if isinstance(store, RedisStore):
        from liveupdates.store.websub_redis import RedisWebSubStore

        return RedisWebSubStore(store)
    if isinstance(store, SQLiteStore):
        from liveupdates.store.websub_sqlite import SQLiteWebSubStore

        return SQLiteWebSubStore(store)
    raise TypeError(f"no WebSub store for {type(store).__name__}")
