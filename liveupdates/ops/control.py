"""How the admin API acts on the poller: poll a feed now, and nudge the schedule after a change.

The store is the source of truth for feeds, so a change already reaches every worker through its
periodic re-read of the feed list; `feeds_changed` only makes it act at once in this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from liveupdates.models import PollOutcome

if TYPE_CHECKING:
    from liveupdates.ingest import Ingestor
    from workers.poller import FeedScheduler


class UnknownFeed(KeyError):
    pass


class Control(Protocol):
    async def poll_now(self, feed_id: str) -> PollOutcome:
        """Poll the feed right now (paused or not) and return the outcome; UnknownFeed if none."""
        ...

    async def feeds_changed(self) -> None:
        """The feed list changed in the store; apply it now where this process can."""
        ...


class LocalControl:
    """Control in this process: polls with `ingestor` against the shared store.

    `scheduler` is the embedded poller's (`liveupdates serve`), or None in a web-only process
    (Redis mode), where the workers pick changes up from the store within their sync period. It
    may be attached after construction, once the poller has started.
    """

    def __init__(self, ingestor: Ingestor, scheduler: FeedScheduler | None = None) -> None:
        self.ingestor = ingestor
        self.scheduler = scheduler

    async def poll_now(self, feed_id: str) -> PollOutcome:
        feed = await self.ingestor.store.get_feed(feed_id)
        if feed is None:
            raise UnknownFeed(feed_id)
        report = await self.ingestor.poll(feed)
        return report.outcome

    async def feeds_changed(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.sync(await self.ingestor.store.list_feeds())
