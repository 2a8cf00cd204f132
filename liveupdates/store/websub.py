"""The WebSub part of the store: push subscriptions and pushed bodies waiting to be ingested.

A small Protocol of its own, implemented next to each backend (websub_sqlite.py,
websub_redis.py) over the main store object's connection, and checked by one contract suite
(tests/test_websub_store_contract.py). Each backend file (liveupdates/backends/) builds it as the
`websub` part of `Backends`. The data it holds (`WebSubSubscription`, `PushedBody`) is in
liveupdates/models.py, so the pure WebSub rules read it without importing a store.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from liveupdates.models import FeedConfig, PushedBody, WebSubSubscription


@runtime_checkable
class WebSubStore(Protocol):
    async def get(self, feed_id: str) -> WebSubSubscription | None: ...

    async def push_target(
        self, feed_id: str
    ) -> tuple[WebSubSubscription | None, FeedConfig | None]:
        """The feed's subscription and its config (as the main store's get_feed), in one read:
        what a push needs before its signature is checked and its body handed on."""
        ...

    async def subscriptions(self) -> list[WebSubSubscription]: ...

    async def put(self, sub: WebSubSubscription) -> None:
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
