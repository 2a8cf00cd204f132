"""The scheduled poller: one APScheduler job per enabled feed, each rescheduling itself.

Each job polls its feed, then decides when to run next from the poll's outcome with the adaptive
rule of liveupdates/feeds/schedule.py: faster while its stories change, slower as they go quiet,
exponential backoff after errors, never before a Retry-After. A feed is never dropped from
scheduling: a failing one keeps being polled (less often) and shows its error count. One feed's
failure or slowness never touches another feed's job.

Every planned poll time is written to the store (`set_next_poll`), so ops see it from any process.

Several workers share the feeds through `Claims` (workers/claims.py): every worker has a job for
every feed, but a job only polls if its claim is granted; otherwise it waits for the shared due
time. Embedded mode uses claims that always grant, so one process behaves as it always did.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from liveupdates.feeds.schedule import plan_next_poll
from liveupdates.ingest import Ingestor, PollReport
from liveupdates.models import FeedConfig
from workers.claims import Claims, LocalClaims

log = logging.getLogger("liveupdates.worker")

# A worker refused a claim asks again this long after the shared due time (plus up to a tenth of
# the interval, at most FOLLOW_SPREAD): the holder's own job fires at the due time itself, so the
# holder keeps its feeds while it lives and the others take over only when it stops.
FOLLOW_DELAY = 0.05
FOLLOW_SPREAD = 0.5
# Wait before asking again when the claims themselves cannot be reached (Redis restarting).
CLAIM_RETRY_SECONDS = 5.0


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
        claims: Claims | None = None,
        lease_seconds: float = 30.0,
        poll_floor: Callable[[FeedConfig], float | None] | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.claims: Claims = claims if claims is not None else LocalClaims()
        self.lease_seconds = lease_seconds
        self.jitter = jitter
        self.max_backoff = max_backoff
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.on_report = on_report
        # The shortest wait after a poll for a feed that is pushed (WebSub): None polls as usual.
        self.poll_floor = poll_floor
        # One poll or pushed body of a feed at a time in this process (claims cover the others).
        self._locks: dict[str, asyncio.Lock] = {}
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._feeds: dict[str, FeedConfig] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()  # "poll now" asked while a poll was running
        self._forced: set[str] = set()  # "poll now": claim even if not due
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
            self._locks.pop(feed_id, None)
            self._plan(feed_id, None)
            await self._forget_claim(feed_id)
        for feed_id, feed in wanted.items():
            old = self._feeds.get(feed_id)
            self._feeds[feed_id] = feed
            if old is not None and feed_id in self._running:
                continue  # _run reschedules with the new config when the poll ends
            if old is None or self.scheduler.get_job(feed_id) is None:
                state = await self.ingestor.store.get_fetch_state(feed_id)
                delay = 0.0
                if state.not_before is not None:
                    delay = max(0.0, state.not_before - time.time())
                due = await self._shared_due(feed_id)
                if due is not None and due - time.time() > delay:
                    # Another worker polls it and has planned the next poll: follow that plan.
                    self._follow_due(feed, due)
                else:
                    self._schedule(feed_id, delay)
            elif (
                old.interval_seconds != feed.interval_seconds
                or old.url != feed.url
                or old.adaptive != feed.adaptive
            ):
                # A new interval acts now, not after the old (maybe long) wait runs out, and the
                # adaptive pace starts again from it.
                self._pace.pop(feed_id, None)
                delay = min(feed.interval_seconds, self._seconds_to_next(feed_id))
                self._schedule(feed_id, delay)
                await self._hasten_claim(feed_id, time.time() + delay)
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
            self._forced.add(feed_id)
            self._schedule(feed_id, 0.0)

    def _seconds_to_next(self, feed_id: str) -> float:
        when = self.next_run(feed_id)
        if when is None:
            return 0.0
        return max(0.0, (when - datetime.now(UTC)).total_seconds())

    def _schedule(self, feed_id: str, delay: float, shown_at: float | None = None) -> None:
        """Run the feed's job in `delay` s; the store shows `shown_at` (unix) if given, else then.

        A worker following another's plan shows the shared due time, not its own later check.
        """
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
        self._plan(feed_id, run_at if shown_at is None else datetime.fromtimestamp(shown_at, UTC))

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
        force = feed_id in self._forced
        self._forced.discard(feed_id)
        try:
            granted = await self.claims.claim(feed_id, self.lease_seconds, force=force)
        except Exception:
            # Without claims nobody can tell who polls: ask again soon rather than poll twice.
            log.exception("could not claim feed %s", feed_id)
            self._schedule(feed_id, min(feed.interval_seconds, CLAIM_RETRY_SECONDS))
            return
        if not granted:
            await self._follow(feed)
            return
        self._running.add(feed_id)
        report: PollReport | None = None
        try:
            async with self._lock(feed_id):
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
        delay = self._delay_after(feed, report)
        if feed_id in self._again:
            self._again.discard(feed_id)
            delay = 0.0
        elif self.scheduler.get_job(feed_id) is not None:
            # sync() rescheduled it during the poll (new interval): keep the sooner time.
            delay = min(delay, self._seconds_to_next(feed_id))
        self._schedule(feed_id, delay)
        try:
            await self.claims.release(feed_id, time.time() + delay)
        except Exception:
            # The lease runs out by itself; the feed is then polled by whoever claims it first.
            log.exception("could not release feed %s", feed_id)

    def _lock(self, feed_id: str) -> asyncio.Lock:
        lock = self._locks.get(feed_id)
        if lock is None:
            lock = self._locks[feed_id] = asyncio.Lock()
        return lock

    async def ingest_pushed(
        self, feed_id: str, body: bytes, headers: Mapping[str, str]
    ) -> PollReport | None:
        """Ingest a body the feed's WebSub hub pushed, through the same path as a poll.

        Never overlaps a poll of the same feed in this process (the feed's lock), and holds the
        feed's claim meanwhile so no other worker starts a poll of it; the shared due time is put
        back afterwards, so pushes do not move the poll schedule. None for an unknown or paused
        feed. (A poll another worker had already started may still overlap: the store's
        versioned append keeps that to one version per change.)
        """
        feed = self._feeds.get(feed_id)
        if feed is None:
            return None
        async with self._lock(feed_id):
            due = await self._shared_due(feed_id)
            try:
                await self.claims.claim(feed_id, self.lease_seconds, force=True)
            except Exception:
                log.exception("could not claim feed %s for a pushed body", feed_id)
            try:
                report = await self.ingestor.ingest_pushed(feed, body, headers)
            finally:
                try:
                    await self.claims.release(feed_id, due if due is not None else time.time())
                except Exception:
                    log.exception("could not release feed %s after a pushed body", feed_id)
        if self.on_report:
            self.on_report(report)
        return report

    async def _follow(self, feed: FeedConfig) -> None:
        """Another worker holds the feed: check again just after the shared due time."""
        due = await self._shared_due(feed.id)
        if due is None:
            # Claimed but gone already (removed, paused): look again after one interval.
            self._schedule(feed.id, feed.interval_seconds)
            return
        self._follow_due(feed, due)

    def _follow_due(self, feed: FeedConfig, due: float) -> None:
        # Never wait more than one interval: a due time read while the holder was polling is
        # its lease end, and the holder's plan, written a moment later, is usually sooner.
        wait = min(max(0.0, due - time.time()), feed.interval_seconds)
        self._schedule(feed.id, wait + self._follow_jitter(feed), due)

    def _follow_jitter(self, feed: FeedConfig) -> float:
        return FOLLOW_DELAY + random.random() * min(FOLLOW_SPREAD, 0.1 * feed.interval_seconds)

    async def _shared_due(self, feed_id: str) -> float | None:
        try:
            return await self.claims.due(feed_id)
        except Exception:
            log.exception("could not read when feed %s is due", feed_id)
            return None

    async def _hasten_claim(self, feed_id: str, at: float) -> None:
        """Bring the shared due time forward to `at` (an ops change), never push it back."""
        try:
            due = await self.claims.due(feed_id)
            if due is None or due > at:
                await self.claims.release(feed_id, at)
        except Exception:
            log.exception("could not move the next poll of feed %s", feed_id)

    async def _forget_claim(self, feed_id: str) -> None:
        try:
            await self.claims.forget(feed_id)
        except Exception:
            log.exception("could not drop the due time of feed %s", feed_id)

    def _delay_after(self, feed: FeedConfig, report: PollReport | None) -> float:
        if report is None:
            errors, events, retry_after, hint = 1, 0, None, None
        else:
            errors, events = report.consecutive_errors, report.outcome.events
            retry_after, hint = report.retry_after, report.hint
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
        floor = self.poll_floor(feed) if self.poll_floor is not None else None
        # A pushed feed is only polled as a safety net: slowly, unless the hub stops (the
        # WebSub manager then asks for a poll at once, and the floor is gone).
        return plan.delay if floor is None else max(plan.delay, floor)
