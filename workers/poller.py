"""The scheduled poller: one APScheduler job per enabled feed, each rescheduling itself.

Each job polls its feed, then decides when to run next from the poll's outcome with the adaptive
rule of liveupdates/feeds/schedule.py: faster while its stories change, slower as they go quiet,
exponential backoff after errors, never before a Retry-After. A feed is never dropped from
scheduling: a failing one keeps being polled (less often) and shows its error count. One feed's
failure or slowness never touches another feed's job.

Every planned poll time is written to the store (`set_next_poll`), so ops see it from any process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from liveupdates.feeds.schedule import plan_next_poll
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
        min_interval: float = 0.0,
        max_interval: float = float("inf"),
        on_report: Callable[[PollReport], None] | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.jitter = jitter
        self.max_backoff = max_backoff
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.on_report = on_report
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._feeds: dict[str, FeedConfig] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()  # "poll now" asked while a poll was running
        self._pace: dict[str, float] = {}  # adaptive wait after a success, per feed
        # Planned poll times not yet written to the store (None: no poll planned). One writer
        # task drains it, so writes for a feed never overtake each other.
        self._plans: dict[str, str | None] = {}
        self._writer: asyncio.Task[None] | None = None

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
            self._pace.pop(feed_id, None)
            self._plan(feed_id, None)
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
            elif (
                old.interval_seconds != feed.interval_seconds
                or old.url != feed.url
                or old.adaptive != feed.adaptive
            ):
                # A new interval acts now, not after the old (maybe long) wait runs out, and the
                # adaptive pace starts again from it.
                self._pace.pop(feed_id, None)
                self._schedule(feed_id, min(feed.interval_seconds, self._seconds_to_next(feed_id)))
        await self.flush_plans()

    async def flush_plans(self) -> None:
        """Wait until every planned poll time so far is in the store."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.shield(writer)

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
        self._plan(feed_id, run_at)

    def _plan(self, feed_id: str, run_at: datetime | None) -> None:
        self._plans[feed_id] = (
            None
            if run_at is None
            else run_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_plans())

    async def _write_plans(self) -> None:
        while self._plans:
            feed_id = next(iter(self._plans))
            at = self._plans.pop(feed_id)
            try:
                await self.ingestor.store.set_next_poll(feed_id, at)
            except Exception:
                # Only the displayed time is lost; the schedule itself is in memory.
                log.exception("could not record the next poll of feed %s", feed_id)

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
            errors, events, retry_after, hint = 1, 0, None, None
        else:
            state = await self.ingestor.store.get_fetch_state(feed.id)
            errors = state.consecutive_errors
            events, retry_after, hint = report.outcome.events, report.retry_after, report.hint
        plan = plan_next_poll(
            interval=feed.interval_seconds,
            adaptive=feed.adaptive,
            pace=self._pace.get(feed.id),
            events=events,
            errors=errors,
            hint=hint,
            retry_after=retry_after,
            min_interval=self.min_interval,
            max_interval=self.max_interval,
            max_backoff=self.max_backoff,
            jitter=self.jitter,
        )
        self._pace[feed.id] = plan.pace
        return plan.delay
