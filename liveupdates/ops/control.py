"""How the admin API acts on the pollers: poll a feed now, and tell them the feed list changed.

In a process with a scheduler (`liveupdates serve`) "poll now" runs through it, so it holds the
feed's claim like any poll and plans the next one. A web-only process (`liveupdates web`, Redis
mode) has none: it requests the poll from the workers (`Claims.request` + `Signal.POLL`); the
worker that claims the feed first polls it and announces the end (`Signal.POLLED`), and the answer
carries the outcome it stored (of a poll that started after the request: workers' and web
processes' clocks must agree, as for the claims), or None when none came within `wait_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Protocol

from liveupdates.backends import Backends, Signal, SignalKind
from liveupdates.models import PollOutcome
from liveupdates.polling import Poller


class UnknownFeed(KeyError):
    pass


class Control(Protocol):
    async def poll_now(self, feed_id: str) -> PollOutcome | None:
        """Poll the feed now (paused or not) and return the outcome; UnknownFeed if none; None
        if the poll was requested but its outcome did not arrive in time."""
        ...

    async def feeds_changed(self) -> None:
        """The feed list changed in the store; tell every scheduler."""
        ...


class PollControl:
    """Control through this process's `poller` if it has one (it may be attached once the
    poller has started), else through the workers."""

    def __init__(
        self, backends: Backends, *, poller: Poller | None = None, wait_seconds: float = 25.0
    ) -> None:
        self.backends = backends
        self.poller = poller
        self.wait_seconds = wait_seconds

    async def poll_now(self, feed_id: str) -> PollOutcome | None:
        if self.poller is not None:
            report = await self.poller.poll_now(feed_id)
            if report is None:
                raise UnknownFeed(feed_id)
            return report.outcome
        store = self.backends.store
        if await store.get_feed(feed_id) is None:
            raise UnknownFeed(feed_id)
        asked = time.time()
        async with self.backends.signals.listen() as signals:
            await self.backends.claims.request(feed_id)
            await self.backends.signals.send(Signal(SignalKind.POLL, feed_id))
            try:
                async with asyncio.timeout(self.wait_seconds):
                    async for notice in signals:
                        if notice.feed_id != feed_id and notice.kind != SignalKind.RESYNC:
                            continue
                        # A poll of it ended (or notices were lost: look anyway). Only a poll
                        # that started after the request answers it.
                        outcome = await self._outcome(feed_id)
                        if outcome is not None and _started(outcome) >= asked:
                            return outcome
            except TimeoutError:
                pass
        return None

    async def _outcome(self, feed_id: str) -> PollOutcome | None:
        health = await self.backends.store.feed_health(feed_id)
        return None if health is None else health.last_poll

    async def feeds_changed(self) -> None:
        if self.poller is not None:
            # Applied here before the answer, so it already shows the new plan.
            await self.poller.sync(await self.backends.store.list_feeds())
        await self.backends.signals.send(Signal(SignalKind.FEEDS))


def _started(outcome: PollOutcome) -> float:
    """When the poll began (unix seconds): its end less its duration."""
    ended = datetime.fromisoformat(outcome.at.replace("Z", "+00:00")).timestamp()
    return ended - outcome.duration_ms / 1000
