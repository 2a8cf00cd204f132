"""The scheduled poller: one APScheduler job per enabled feed, each rescheduling itself.

Each job polls its feed, then decides when to run next from the poll's outcome with the adaptive
rule of liveupdates/feeds/schedule.py: faster while its stories change, slower as they go quiet,
exponential backoff after errors, never before a Retry-After. A feed is never dropped from
scheduling: a failing one keeps being polled (less often) and shows its error count. One feed's
failure or slowness never touches another feed's job.

Every planned poll time is written to the store (`set_next_poll`), so ops see it from any process.

Several workers share the feeds through `Claims` (liveupdates/backends/base.py): every worker has
a job for every feed, but a job only polls if its claim is granted; otherwise it waits for the
shared due time. Embedded mode uses claims that only keep one process's own polls apart.

Every poll of a feed in this process goes through here and through the feed's claim: the
scheduled ones, "poll now" (`poll_now`, `poll_feed`) and a pushed body (`ingest_pushed`). So two
polls of one feed never overlap, in one process (a lock per feed) or across processes (the
claim's lease), and each poll plans the next one.

How the lease and the pickup bound work
---------------------------------------
A job asks `claim(feed, lease)` when it fires: granted only if the feed is due and no lease is
held, and the grant pushes the shared due time to now + lease. The winner polls, then
`release(feed, next_due)` sets the due time to its next planned poll. A loser reschedules its
own job at the due time plus a little jitter, but never more than one interval ahead, and asks
again then. The holder's own job fires at the due time itself, so it keeps its feeds while it
lives. A worker that dies mid-poll delays its feeds by at most one lease (fetch total timeout +
LEASE_MARGIN: 30 s with the defaults); one that dies between polls delays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from liveupdates.backends import Backends, Claims, Grant, Signal, SignalKind, lease_for
from liveupdates.backends.availability import Availability
from liveupdates.backends.sqlite import LocalClaims
from liveupdates.feeds.entries import Keys, covers, entry_keys
from liveupdates.feeds.fetch import Fetcher
from liveupdates.feeds.schedule import plan_next_poll
from liveupdates.ingest import Ingestor, OnFetched, PollReport
from liveupdates.models import FeedConfig
from liveupdates.runtime import make_fetcher
from liveupdates.settings import Settings

log = logging.getLogger("liveupdates.worker")

# A worker refused a claim asks again this long after the shared due time (plus up to a tenth of
# the interval, at most FOLLOW_SPREAD): the holder's own job fires at the due time itself, so the
# holder keeps its feeds while it lives and the others take over only when it stops.
FOLLOW_DELAY = 0.05
FOLLOW_SPREAD = 0.5
# Wait before asking again when the claims themselves cannot be reached (Redis restarting).
CLAIM_RETRY_SECONDS = 5.0
# How often a "poll now" or a pushed body asks again for a feed another process is polling.
HELD_RETRY_SECONDS = 0.1

Work = Callable[[FeedConfig], Awaitable[PollReport]]


class _FeedLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # holding or waiting


@dataclass(slots=True)
class _QueuedPush:
    """A pushed body waiting for its feed's turn. A later push that names every entry of it
    takes its place (`replace`): one ingest instead of two, and every caller gets its report.

    Each push carries the topic's new content (WebSub §8), so the newer body holds every entry of
    the older one in a version at least as new, and ingesting the older one first would only add
    a version that the next one supersedes at once, as between two polls. Some hubs send only
    the new or changed entries instead (hubs differ here): such bodies name different entries, so
    they are never replaced, and each is ingested in turn. The same rule for the pushes a worker
    takes from the queue: websub/bursts.py."""

    body: bytes
    headers: Mapping[str, str]
    done: asyncio.Future[PollReport]
    keys: Keys = None
    keyed: bool = False

    def replace(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Take `body` instead if it names every entry this body names; False if it does not.
        Both bodies are scanned on the event loop (a regex over their bytes, no parse)."""
        if not self.keyed:
            self.keys, self.keyed = entry_keys(self.body), True
        if self.keys is None:
            return False
        newer = entry_keys(body)
        if not covers(newer, self.keys):
            return False
        self.body, self.headers, self.keys = body, headers, newer
        return True


class FeedBusy(Exception):
    """Another process held the feed for longer than a whole lease: something is wrong there."""


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
        announce: Callable[[Signal], Awaitable[None]] | None = None,
        poll_floor: Callable[[FeedConfig], float | None] | None = None,
        availability: Availability | None = None,
    ) -> None:
        self.ingestor = ingestor
        # Store and claims outages are reported there (one line each way), not per failed call.
        self.availability = availability if availability is not None else Availability("store")
        # The shortest wait after a poll of a feed a WebSub hub pushes; None: poll as usual.
        self.poll_floor = poll_floor
        self.claims: Claims = claims if claims is not None else LocalClaims()
        self.announce = announce  # tells a waiting "poll now" (another process) its poll ended
        self._fetcher: Fetcher | None = None  # closed by aclose() when built here
        self.lease_seconds = lease_seconds
        self.jitter = jitter
        self.max_backoff = max_backoff
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.on_report = on_report
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._feeds: dict[str, FeedConfig] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()  # a poll was requested while one was running
        self._locks: dict[str, _FeedLock] = {}  # one poll of a feed at a time, here
        self._tasks: set[asyncio.Task[None]] = set()  # requested polls run outside their jobs
        self._pushes: dict[str, _QueuedPush] = {}  # per feed, the latest push waiting its turn
        self._pace: dict[str, float] = {}  # adaptive wait after a success, per feed
        # Planned poll times not yet written to the store (None: no poll planned). One writer
        # task drains it, so writes for a feed never overtake each other.
        self._plans: dict[str, str | None] = {}
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def for_process(
        cls,
        settings: Settings,
        backends: Backends,
        *,
        self_url: str | None = None,
        on_fetched: OnFetched | None = None,
        poll_floor: Callable[[FeedConfig], float | None] | None = None,
    ) -> FeedScheduler:
        """The process's one scheduler, with its one Fetcher and Ingestor (closed by aclose).
        `on_fetched` and `poll_floor` are the WebSub manager's hooks (discovery, slow polls)."""
        fetcher = make_fetcher(settings)
        scheduler = cls(
            Ingestor(
                backends.store,
                fetcher,
                publish=backends.bus.publish,
                flipflop_window=settings.poll_flipflop_window,
                self_url=self_url,
                on_fetched=on_fetched,
            ),
            jitter=settings.poll_jitter,
            max_backoff=settings.poll_max_backoff,
            min_interval=settings.poll_min_interval,
            max_interval=settings.poll_max_interval,
            claims=backends.claims,
            lease_seconds=lease_for(settings.fetch_total_timeout),
            announce=backends.signals.send,
            poll_floor=poll_floor,
            availability=backends.availability,
        )
        scheduler._fetcher = fetcher
        return scheduler

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def aclose(self) -> None:
        self.shutdown()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._fetcher is not None:
            await self._fetcher.aclose()

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
            self.ingestor.forget(feed_id)
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

    async def poll_requested(self, feed_id: str) -> None:
        """Another process asked for a poll (Claims.request + Signal.POLL): the worker that
        claims the feed first polls it and announces the end; the others follow its plan."""
        if self._busy(feed_id):
            self._again.add(feed_id)  # asked again once the running poll (or claim) ends
        elif feed_id in self._feeds:
            self._spawn(feed_id)
        else:
            # Paused (or not yet synced here): a requested poll runs anyway, once, by whichever
            # process consumes the request with its claim.
            feed = await self.ingestor.store.get_feed(feed_id)
            if feed is None:
                return
            async with self._lock(feed_id):
                grant = await self.claims.claim(feed_id, self.lease_seconds)
                if grant == Grant.REQUESTED:
                    await self._held(feed, grant, self.ingestor.poll)
                elif grant:
                    await self._forget_claim(feed_id)  # not asked for (any more): undo

    async def poll_now(self, feed_id: str) -> PollReport | None:
        """Poll a stored feed now (paused or not), after any running poll of it; None if there is
        no such feed. The next poll is planned from this one."""
        feed = await self.ingestor.store.get_feed(feed_id)
        if feed is None:
            return None
        return await self.poll_feed(feed)

    async def poll_feed(self, feed: FeedConfig) -> PollReport:
        """Poll `feed` (stored or not: `liveupdates poll URL`) now, holding its claim."""
        return await self._exclusive(feed, self.ingestor.poll)

    async def ingest_pushed(
        self,
        feed_id: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        feed: FeedConfig | None = None,
    ) -> PollReport | None:
        """Take a body pushed to us for a stored, unpaused feed (WebSub) the way a poll takes a
        fetched one, holding the feed's claim (after any running poll of it, never alongside).
        None if the feed is unknown or paused. `feed`: its config as the caller just read it
        (the WebSub callback, with the subscription), saving a store read.

        A push that arrives while an earlier one still waits its turn may take that one's place
        (`_QueuedPush`): both callers then get the report of the one ingest."""
        if feed is None or feed.id != feed_id:
            feed = await self.ingestor.store.get_feed(feed_id)
        if feed is None or feed.paused:
            return None
        waiting = self._pushes.get(feed_id)
        if waiting is not None and waiting.replace(body, headers):
            # A burst: the body waiting its turn is superseded by this one (see _QueuedPush).
            return await asyncio.shield(waiting.done)
        push = _QueuedPush(body, headers, asyncio.get_running_loop().create_future())
        # Retrieved here even if no later push waits on it (no "never retrieved" warning).
        push.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pushes[feed_id] = push

        async def ingest(f: FeedConfig) -> PollReport:
            # Its turn: from here on the body is being read, and nothing may replace it.
            if self._pushes.get(feed_id) is push:
                del self._pushes[feed_id]
            return await self.ingestor.ingest(f, push.body, push.headers)

        try:
            report = await self._exclusive(feed, ingest)
        except BaseException as exc:
            if self._pushes.get(feed_id) is push:
                del self._pushes[feed_id]
            if isinstance(exc, asyncio.CancelledError):
                push.done.cancel()
            else:
                push.done.set_exception(exc)
            raise
        push.done.set_result(report)
        return report

    def _busy(self, feed_id: str) -> bool:
        held = self._locks.get(feed_id)
        return held is not None and held.lock.locked()

    @contextlib.asynccontextmanager
    async def _lock(self, feed_id: str) -> AsyncIterator[None]:
        """The feed's lock. Its entry goes once nobody holds or waits for it: feeds come and go
        for the life of the process, and an entry dropped while held would let a second poll in."""
        held = self._locks.get(feed_id)
        if held is None:
            held = self._locks[feed_id] = _FeedLock()
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if not held.users:
                del self._locks[feed_id]

    async def _exclusive(self, feed: FeedConfig, work: Work) -> PollReport:
        """Run `work` on the feed as soon as no other poll of it runs, here or elsewhere."""
        async with self._lock(feed.id):
            deadline = time.monotonic() + 2 * self.lease_seconds
            while True:
                grant = await self.claims.claim(feed.id, self.lease_seconds, force=True)
                if grant:
                    report = await self._held(feed, grant, work, reraise=True)
                    assert report is not None  # a failed poll raised instead
                    return report
                if time.monotonic() > deadline:
                    if feed.id in self._feeds and self.scheduler.get_job(feed.id) is None:
                        self._schedule(feed.id, CLAIM_RETRY_SECONDS)  # its job yielded to us
                    raise FeedBusy(f"feed {feed.id} stayed claimed for over two leases")
                # Another process polls it: its lease ends when that poll does (or in a lease).
                await asyncio.sleep(HELD_RETRY_SECONDS)

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
            self._job,
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
            # All the plans made meanwhile at once (the store batches them), one per feed, so
            # writes for a feed never overtake each other.
            plans, self._plans = self._plans, {}
            store = self.ingestor.store
            results = await asyncio.gather(
                *(store.set_next_poll(f, at) for f, at in plans.items()), return_exceptions=True
            )
            for feed_id, result in zip(plans, results, strict=True):
                if isinstance(result, Exception):
                    # Only the displayed time is lost; the schedule itself is in memory.
                    self._failed(result, "could not record the next poll of feed %s", feed_id)

    async def _job(self, feed_id: str) -> None:
        """A feed's APScheduler job. Cancelled only when the scheduler shuts down, and then
        ended quietly: APScheduler would log the cancellation as a failure, with a traceback."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._run(feed_id)

    async def _run(self, feed_id: str) -> None:
        feed = self._feeds.get(feed_id)
        if feed is None or self._busy(feed_id):
            return  # a "poll now" of it is running: it plans the next poll when it ends
        async with self._lock(feed_id):
            try:
                grant = await self.claims.claim(feed_id, self.lease_seconds)
            except Exception as exc:
                # Without claims nobody can tell who polls: ask again soon rather than poll twice
                # (later and later while the store is down).
                self._failed(exc, "could not claim feed %s", feed_id)
                usual = min(feed.interval_seconds, CLAIM_RETRY_SECONDS)
                self._schedule(feed_id, self.availability.retry_delay(usual))
                return
            self.availability.answered()
            if not grant:
                await self._follow(feed)
                return
            await self._held(feed, grant, self.ingestor.poll)

    async def _held(
        self, feed: FeedConfig, grant: Grant, work: Work, *, reraise: bool = False
    ) -> PollReport | None:
        """Run `work` on a feed whose claim this process holds, then plan its next poll and
        release the claim. The caller holds the feed's lock. If `work` fails, the error is
        logged (or, with `reraise`, raised to the caller once the next poll is planned)."""
        feed_id = feed.id
        planned = self.next_run(feed_id)
        self._running.add(feed_id)
        report: PollReport | None = None
        failure: Exception | None = None
        try:
            report = await work(feed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug or a store outage for this feed must not end its polling.
            failure = exc
            if not reraise:
                self._failed(exc, "poll of feed %s failed", feed_id)
        finally:
            self._running.discard(feed_id)
        await self._after(feed, grant, report, planned)
        if failure is not None and reraise:
            raise failure
        return report

    async def _after(
        self, feed: FeedConfig, grant: Grant, report: PollReport | None, planned: datetime | None
    ) -> None:
        feed_id = feed.id
        if report is not None and self.on_report:
            self.on_report(report)
        if grant == Grant.REQUESTED and self.announce is not None:
            try:
                await self.announce(Signal(SignalKind.POLLED, feed_id))
            except Exception as exc:
                self._failed(exc, "could not announce the requested poll of feed %s", feed_id)
        scheduled = self._feeds.get(feed_id)
        if scheduled is None:
            if feed.paused or await self.ingestor.store.get_feed(feed_id) is None:
                # Paused, removed while polled, or never stored (`liveupdates poll URL`).
                self.ingestor.forget(feed_id)
                await self._forget_claim(feed_id)
                return
            # Not scheduled here (`liveupdates poll FEED`): the workers follow this plan.
            await self._release(feed_id, time.time() + self._delay_after(feed, report))
            return
        delay = self._delay_after(scheduled, report)
        if self.next_run(feed_id) not in (None, planned):
            # sync() rescheduled it during the poll (new interval): keep the sooner time.
            delay = min(delay, self._seconds_to_next(feed_id))
        self._schedule(feed_id, delay)
        await self._release(feed_id, time.time() + delay)
        if feed_id in self._again:
            # Requested while this poll ran: claim again at once (granted if still requested).
            self._again.discard(feed_id)
            self._spawn(feed_id)

    def _spawn(self, feed_id: str) -> None:
        """Run the feed's claim-and-poll now, outside its APScheduler job: a job rescheduled to
        fire at once from inside itself would be skipped as a second running instance."""
        task = asyncio.get_running_loop().create_task(self._run_soon(feed_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_soon(self, feed_id: str) -> None:
        await asyncio.sleep(0)  # let the caller's poll release the feed's lock first
        if self._busy(feed_id):
            self._again.add(feed_id)
        else:
            await self._run(feed_id)

    async def _release(self, feed_id: str, next_due: float) -> None:
        try:
            await self.claims.release(feed_id, next_due)
        except Exception as exc:
            # The lease runs out by itself; the feed is then polled by whoever claims it first.
            self._failed(exc, "could not release feed %s", feed_id)

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
        except Exception as exc:
            self._failed(exc, "could not read when feed %s is due", feed_id)
            return None

    async def _hasten_claim(self, feed_id: str, at: float) -> None:
        """Bring the shared due time forward to `at` (an ops change), never push it back."""
        try:
            await self.claims.hasten(feed_id, at)
        except Exception as exc:
            self._failed(exc, "could not move the next poll of feed %s", feed_id)

    async def _forget_claim(self, feed_id: str) -> None:
        try:
            await self.claims.forget(feed_id)
        except Exception as exc:
            self._failed(exc, "could not drop the due time of feed %s", feed_id)

    def _failed(self, exc: Exception, message: str, feed_id: str) -> None:
        """A call for a feed failed: a store outage is the availability's one line; anything
        else is a bug, logged with its traceback."""
        if not self.availability.failed(exc):
            log.error(message, feed_id, exc_info=exc, extra={"feed": feed_id})

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
        # A pushed feed is polled only as a safety net: slowly, until its hub stops (the WebSub
        # manager then requests a poll at once, and the floor is gone).
        return plan.delay if floor is None else max(plan.delay, floor)
