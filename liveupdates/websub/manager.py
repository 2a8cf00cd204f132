"""The subscriber's moving parts in a poller process: subscribe, renew, fall back, unsubscribe,
and hand queued pushes to the scheduler.

Runs beside the scheduler in every poller process (`serve`, `worker`). State lives in the
WebSub store, so several workers share it: what one worker decides, the others read on their
next tick, and `claim_action` makes sure only one of them talks to a hub about a feed at a time.

- Discovery: the Ingestor calls `on_fetched` after each successful fetch; a feed with a hub (and
  not `websub = false`) is subscribed, or re-subscribed when its hub or topic changed.
- Every `tick` seconds: renew leases a quarter before they end, give up on requests the hub never
  verified, notice lapsed leases and denials (a poll is requested at once, `Claims.request` +
  `Signal.POLL`, so whichever worker claims the feed first polls it, once; the feed is then
  polled at its own interval again), unsubscribe feeds that were removed or opted out.
- `poll_floor` is the scheduler's hook: a pushed feed is polled only every
  `websub_fallback_interval` (never faster than its interval).
- Pushes queued by web processes (Redis mode, or `web` on SQLite) are taken from the store, each
  by one worker, and ingested through `deliver` (the scheduler's `ingest_pushed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from liveupdates import metrics
from liveupdates.backends import Backends, Signal, SignalKind
from liveupdates.events import utcnow_iso
from liveupdates.feeds.parse import ParsedFeed
from liveupdates.models import FeedConfig, WebSubSubscription
from liveupdates.settings import Settings
from liveupdates.store.base import Store
from liveupdates.store.websub import WebSubStore
from liveupdates.websub import lease
from liveupdates.websub.bursts import newest_pushes
from liveupdates.websub.client import hub_request
from liveupdates.websub.discovery import Discovered, discover
from liveupdates.websub.tokens import callback_url, new_secret, new_token

log = logging.getLogger("liveupdates.websub")

Deliver = Callable[[str, bytes, Mapping[str, str]], Awaitable[Any]]

TICK_SECONDS = 1.0
# How long one process holds the right to talk to a feed's hub: longer than one request.
ACTION_HOLD = 30.0
QUEUE_BATCH = 32
QUEUE_WAIT = 1.0
# The queue's drainer holds this action name (no feed id starts with "_") while it works; a worker
# that dies holding it delays the queue by at most QUEUE_HOLD seconds.
QUEUE_HOLDER = "_push-queue"
QUEUE_HOLD = 60.0


class WebSubManager:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        client: httpx.AsyncClient,
        *,
        tick: float = TICK_SECONDS,
    ) -> None:
        if not settings.public_url:
            raise ValueError("WebSub needs public_url")
        self.settings = settings
        self.public_url = settings.public_url
        self.backends = backends
        self.store: Store = backends.store
        self.wstore: WebSubStore = backends.websub
        self.client = client
        self.tick_seconds = tick
        self.deliver: Deliver | None = None
        self._subs: dict[str, WebSubSubscription] = {}
        self._pushing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- hooks -----------------------------------------------------------------------------

    def on_fetched(
        self, feed: FeedConfig, url: str, headers: Mapping[str, str], parsed: ParsedFeed
    ) -> None:
        """After a successful fetch (Ingestor hook): subscribe if the feed names a hub."""
        if not feed.websub:
            return
        found = discover(headers, parsed.links, url)
        if found is None:
            return
        sub = self._subs.get(feed.id)
        now = time.time()
        if (
            sub is not None
            and (sub.hub, sub.topic) == (found.hub, found.topic)
            and not lease.needs_request(sub, now)
        ):
            return
        self._spawn(self._consider(feed, found))

    def poll_floor(self, feed: FeedConfig) -> float | None:
        return lease.poll_floor(
            self._subs.get(feed.id),
            time.time(),
            fallback=self.settings.websub_fallback_interval,
            interval=feed.interval_seconds,
        )

    # -- running ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        ticking = asyncio.create_task(self._tick_loop())
        consuming = asyncio.create_task(self._consume_loop())
        try:
            yield self
        finally:
            for task in (ticking, consuming, *self._tasks):
                task.cancel()
            for task in (ticking, consuming, *list(self._tasks)):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.client.aclose()

    def _failed(self, exc: Exception, message: str, *args: object) -> None:
        """A store outage is the availability's one line; anything else is logged with its
        traceback."""
        if not self.backends.availability.failed(exc):
            log.error(message, *args, exc_info=exc)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick_loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                # The store may be briefly unreachable; the next tick tries again.
                self._failed(exc, "websub: tick failed")
            await asyncio.sleep(self.tick_seconds)

    async def _consume_loop(self) -> None:
        while True:
            try:
                # One worker drains the queue at a time, in order: pushes of a feed are then
                # ingested one after another and oldest first, whichever web process queued them.
                claimed = await self.wstore.claim_action(QUEUE_HOLDER, QUEUE_HOLD)
                self.backends.availability.answered()
                if not claimed:
                    await asyncio.sleep(QUEUE_WAIT)
                    continue
                try:
                    pushes = await self.wstore.take_pushes(QUEUE_BATCH, QUEUE_WAIT)
                    for push in newest_pushes(pushes):
                        await self._ingest(push.feed_id, push.body, push.headers)
                finally:
                    await self.wstore.release_action(QUEUE_HOLDER)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc, "websub: could not read queued pushes")
                # While the store is down, later and later (one line for the outage, not one
                # traceback per try).
                await asyncio.sleep(self.backends.availability.retry_delay(QUEUE_WAIT))

    async def _ingest(self, feed_id: str, body: bytes, headers: Mapping[str, str]) -> None:
        if self.deliver is None:
            return
        try:
            report = await self.deliver(feed_id, body, headers)
        except Exception as exc:
            self._failed(exc, "websub: ingesting a push for feed %s failed", feed_id)
            return
        if report is None:
            log.warning("websub: push for feed %s, which is not polled here", feed_id)

    # -- the periodic check ----------------------------------------------------------------

    async def tick(self) -> None:
        now = time.time()
        feeds = {f.id: f for f in await self.store.list_feeds()}
        subs = {s.feed_id: s for s in await self.wstore.subscriptions()}
        for sub in subs.values():
            feed = feeds.get(sub.feed_id)
            wanted = feed is not None and feed.websub
            if not wanted:
                if sub.state in ("pending", "active"):
                    self._spawn(self._unsubscribe(sub))
                elif sub.state != "unsubscribing" or lease.pending_expired(sub, now):
                    # Nothing at the hub to cancel (or it never confirmed): forget it.
                    await self.wstore.delete(sub.feed_id)
                continue
            assert feed is not None
            if sub.state == "pending" and lease.pending_expired(sub, now):
                await self._fail(sub, "the hub did not verify the subscription in time")
            elif lease.lapsed(sub, now):
                metrics.websub_event("lapsed")
                await self._fail(sub, "lease expired")
                self._pushing.add(sub.feed_id)  # so the poll below happens now
            if lease.needs_request(sub, now):
                self._spawn(self._consider(feed, Discovered(sub.hub, sub.topic)))
        self._subs = subs
        pushing = {s.feed_id for s in subs.values() if lease.is_pushing(s, now)}
        for feed_id in self._pushing - pushing:
            # Denied, lapsed, failed or gone: back to polling at the feed's interval, now.
            if feed_id in feeds:
                await self._request_poll(feed_id)
        self._pushing = pushing

    async def _request_poll(self, feed_id: str) -> None:
        try:
            await self.backends.claims.request(feed_id)
            await self.backends.signals.send(Signal(SignalKind.POLL, feed_id))
        except Exception as exc:
            # The feed's next scheduled poll (no longer held back by the floor) comes anyway.
            self._failed(exc, "websub: could not request a poll of feed %s", feed_id)

    async def _fail(self, sub: WebSubSubscription, reason: str) -> None:
        sub.state, sub.reason, sub.expires_at = "failed", reason, None
        await self.wstore.put(sub)
        log.info("websub: feed %s falls back to polling: %s", sub.feed_id, reason)

    # -- talking to hubs -------------------------------------------------------------------

    async def _audit(self, action: str, sub: WebSubSubscription, **details: Any) -> None:
        record = {"at": utcnow_iso(), "actor": "websub", "action": action}
        record.update(feed_id=sub.feed_id, hub=sub.hub, topic=sub.topic, **details)
        await self.store.append_audit(record)

    async def _consider(self, feed: FeedConfig, found: Discovered) -> None:
        try:
            await self._subscribe(feed, found)
        except Exception:
            log.exception("websub: could not subscribe feed %s", feed.id)

    async def _subscribe(self, feed: FeedConfig, found: Discovered) -> None:
        now = time.time()
        sub = await self.wstore.get(feed.id)
        same = sub is not None and (sub.hub, sub.topic) == (found.hub, found.topic)
        if same and not lease.needs_request(sub, now):
            return
        if sub is not None and sub.state == "unsubscribing":
            return
        if not await self.wstore.claim_action(feed.id, ACTION_HOLD):
            return  # another worker is at it
        renewal = same and sub is not None and sub.state == "active"
        if sub is not None and same:
            # Same hub and topic: keep the callback and secret, so pushes in flight still match.
            sub.requested_at, sub.reason = now, None
            if sub.state != "active":
                sub.state = "pending"
        else:
            # A new hub or topic replaces the old subscription; the old hub's next push gets a
            # 410 from the callback (its token is gone), which ends it there.
            sub = WebSubSubscription(
                feed_id=feed.id,
                hub=found.hub,
                topic=found.topic,
                secret=new_secret(),
                token=new_token(feed.id),
                requested_at=now,
            )
        sub.lease_seconds = sub.lease_seconds if renewal else self.settings.websub_lease_seconds
        # Stored before asking: the hub may verify before its answer to this request arrives.
        await self.wstore.put(sub)
        await self._audit("websub.subscribe", sub, renewal=renewal, lease_seconds=sub.lease_seconds)
        answer = await hub_request(
            self.client,
            sub.hub,
            mode="subscribe",
            topic=sub.topic,
            callback=callback_url(self.public_url, sub.token),
            secret=sub.secret,
            lease_seconds=self.settings.websub_lease_seconds,
        )
        metrics.websub_event("requested")
        await self.wstore.release_action(feed.id)
        if answer.accepted:
            return
        metrics.websub_event("failed")
        log.warning("websub: subscribing feed %s at %s failed: %s", feed.id, sub.hub, answer.error)
        current = await self.wstore.get(feed.id)
        if current is not None and current.token == sub.token and current.state == "pending":
            current.state, current.reason = "failed", answer.error
            await self.wstore.put(current)
        elif current is not None and current.token == sub.token:
            # A renewal failed: the lease still runs; it is tried again next tick.
            current.reason = answer.error
            await self.wstore.put(current)

    async def _unsubscribe(self, sub: WebSubSubscription) -> None:
        if not await self.wstore.claim_action(sub.feed_id, ACTION_HOLD):
            return
        sub.state, sub.requested_at, sub.expires_at = "unsubscribing", time.time(), None
        await self.wstore.put(sub)
        await self._audit("websub.unsubscribe", sub)
        answer = await hub_request(
            self.client,
            sub.hub,
            mode="unsubscribe",
            topic=sub.topic,
            callback=callback_url(self.public_url, sub.token),
        )
        metrics.websub_event("unsubscribe_requested")
        await self.wstore.release_action(sub.feed_id)
        if not answer.accepted:
            # Our callback answers 410 to any further push, which ends it at the hub too.
            log.warning("websub: unsubscribing feed %s failed: %s", sub.feed_id, answer.error)
            await self.wstore.delete(sub.feed_id)
