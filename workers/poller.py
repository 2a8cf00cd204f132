"""The scheduled poller: one APScheduler job per enabled feed, each rescheduling itself.

Each job polls its feed, then decides when to run next from the poll's outcome: the feed's interval
with jitter after a success, exponential backoff after errors, never before a Retry-After. A feed is
never dropped from scheduling: a failing one keeps being polled (less often) and shows its error count.
One feed's failure or slowness never touches another feed's job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from liveupdates.feeds.backoff import jittered, next_poll_delay
from liveupdates.ingest import Ingestor, PollReport
from liveupdates.models import FeedConfig

log = logging.getLogger("liveupdates.worker")


class FeedScheduler:
    """Keeps one job per enabled feed in an AsyncIOScheduler and runs the polls."""

    def __init__(
        self,
        ingestor: Ingestor,
        *,
        jitter: float = 0.1,
        max_backoff: float = 3600.0,
        on_report: Callable[[PollReport], None] | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.jitter = jitter
        self.max_backoff = max_backoff
        self.on_report = on_report
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._feeds: dict[str, FeedConfig] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()  # "poll now" asked while a poll was running

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def job_ids(self) -> set[str]:
        return {job.id for job in self.scheduler.get_jobs()}

    def next_run(self, feed_id: str) -> datetime | None:
        job = self.scheduler.get_job(feed_id)
        return job.next_run_time if job else None

    async def sync(self, feeds: list[FeedConfig]) -> None:
        """Make the jobs match `feeds`: add new ones, drop removed or paused, apply new intervals."""
        wanted = {f.id: f for f in feeds if not f.paused}
        for feed_id in self.job_ids() - set(wanted):
            self.scheduler.remove_job(feed_id)
            self._feeds.pop(feed_id, None)
        for feed_id, feed in wanted.items():
            old = self._feeds.get(feed_id)
            self._feeds[feed_id] = feed
            if old is None or self.scheduler.get_job(feed_id) is None:
                state = await self.ingestor.store.get_fetch_state(feed_id)
                delay = 0.0
                if state.not_before is not None:
                    delay = max(0.0, state.not_before - time.time())
                self._schedule(feed_id, delay)
            elif feed_id in self._running:
                continue  # _run reschedules with the new config when the poll ends
            elif old.interval_seconds != feed.interval_seconds or old.url != feed.url:
                # A new interval acts now, not after the old (maybe long) wait runs out.
                self._schedule(feed_id, min(feed.interval_seconds, self._seconds_to_next(feed_id)))

    def poll_soon(self, feed_id: str) -> None:
        if feed_id in self._running:
            self._again.add(feed_id)
        elif feed_id in self._feeds:
            self._schedule(feed_id, 0.0)

    def _seconds_to_next(self, feed_id: str) -> float:
        when = self.next_run(feed_id)
        if when is None:
            return 0.0
        return max(0.0, (when - datetime.now(UTC)).total_seconds())

    def _schedule(self, feed_id: str, delay: float) -> None:
        run_at = datetime.now(UTC) + timedelta(seconds=delay)
        self.scheduler.add_job(
            self._run,
            trigger=DateTrigger(run_date=run_at, timezone=UTC),
            args=[feed_id],
            id=feed_id,
            replace_existing=True,
            max_instances=1,
            misfire_grace_time=None,
            coalesce=True,
        )

    async def _run(self, feed_id: str) -> None:
        feed = self._feeds.get(feed_id)
        if feed is None:
            return
        self._running.add(feed_id)
        report: PollReport | None = None
        try:
            report = await self.ingestor.poll(feed)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a store outage for this feed must not end its polling.
            log.exception("poll of feed %s failed", feed_id)
        finally:
            self._running.discard(feed_id)
        if report is not None and self.on_report:
            self.on_report(report)
        feed = self._feeds.get(feed_id)
        if feed is None:
            return  # removed while it was being polled
        delay = await self._delay_after(feed, report)
        if feed_id in self._again:
            self._again.discard(feed_id)
            delay = 0.0
        elif self.scheduler.get_job(feed_id) is not None:
            # sync() rescheduled it during the poll (new interval): keep the sooner time.
            delay = min(delay, self._seconds_to_next(feed_id))
        self._schedule(feed_id, delay)

    async def _delay_after(self, feed: FeedConfig, report: PollReport | None) -> float:
        if report is None:
            errors, retry_after = 1, None
        else:
            state = await self.ingestor.store.get_fetch_state(feed.id)
            errors, retry_after = state.consecutive_errors, report.retry_after
        if not errors:
            return jittered(feed.interval_seconds, self.jitter)
        return next_poll_delay(
            feed.interval_seconds, errors, retry_after=retry_after, max_backoff=self.max_backoff
        )
