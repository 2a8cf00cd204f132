"""`liveupdates worker`: the poller process, and the poller that `liveupdates serve` embeds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from liveupdates.backends import Backends, Signal, SignalKind, check_reachable, open_backends
from liveupdates.metrics import start_metrics_server
from liveupdates.runtime import seed_feeds, self_url_from_env
from liveupdates.settings import Settings
from liveupdates.startup import stop_on_signals
from liveupdates.websub.client import make_hub_client
from liveupdates.websub.manager import WebSubManager
from workers.poller import FeedScheduler

log = logging.getLogger("liveupdates.worker")


@contextlib.asynccontextmanager
async def running_poller(
    settings: Settings, backends: Backends, *, self_url: str | None = None
) -> AsyncIterator[FeedScheduler]:
    """Poll every enabled feed of the store on its schedule until the block exits.

    The feed list is read once at start and again on each `Signal.FEEDS` (an ops change, from any
    process) or `RESYNC` (notices may have been missed, e.g. Redis restarted); never on a timer.
    """
    websub = make_websub_manager(settings, backends)
    scheduler = FeedScheduler.for_process(
        settings,
        backends,
        self_url=self_url,
        on_fetched=websub.on_fetched if websub else None,
        poll_floor=websub.poll_floor if websub else None,
    )
    following: asyncio.Task[None] | None = None
    try:
        # Listen before the first read, so a change made in between is not missed.
        async with backends.signals.listen() as signals:
            await scheduler.sync(await backends.store.list_feeds())
            scheduler.start()
            following = asyncio.create_task(_follow(scheduler, backends, signals))
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if websub is not None:
                        websub.deliver = scheduler.ingest_pushed
                        await stack.enter_async_context(websub.running())
                    yield scheduler
            finally:
                following.cancel()
        # Closing the listener ends the follower even if a read blocked in a client library
        # let the cancellation pass.
        with contextlib.suppress(asyncio.CancelledError):
            await following
    finally:
        if following is not None and not following.done():
            following.cancel()
        await scheduler.aclose()


def make_websub_manager(settings: Settings, backends: Backends) -> WebSubManager | None:
    """The WebSub subscriber of this poller process; None (WebSub off) without public_url."""
    if not settings.public_url:
        return None
    return WebSubManager(settings, backends, make_hub_client(settings))


async def _follow(
    scheduler: FeedScheduler, backends: Backends, signals: AsyncIterator[Signal]
) -> None:
    requested: set[asyncio.Task[None]] = set()  # a requested poll must not hold up the notices
    try:
        await _act(scheduler, backends, signals, requested)
    finally:
        for task in requested:
            task.cancel()
        await asyncio.gather(*requested, return_exceptions=True)


async def _act(
    scheduler: FeedScheduler,
    backends: Backends,
    signals: AsyncIterator[Signal],
    requested: set[asyncio.Task[None]],
) -> None:
    async for notice in signals:
        try:
            if notice.kind in (SignalKind.FEEDS, SignalKind.RESYNC):
                await scheduler.sync(await backends.store.list_feeds())
            elif notice.kind == SignalKind.POLL:
                task = asyncio.create_task(_requested(scheduler, notice.feed_id))
                requested.add(task)
                task.add_done_callback(requested.discard)
        except Exception as exc:
            # The store may be briefly unreachable (Redis restart): the schedule stays as it
            # is, and the RESYNC after the reconnect brings it up to date.
            if not backends.availability.failed(exc):
                log.exception("could not act on %s", notice)


async def _requested(scheduler: FeedScheduler, feed_id: str) -> None:
    try:
        await scheduler.poll_requested(feed_id)
    except Exception as exc:
        if not scheduler.availability.failed(exc):
            log.exception("could not run the requested poll of feed %s", feed_id)


async def run_worker(settings: Settings) -> None:
    stop_metrics = start_metrics_server(settings)
    backends = open_backends(settings)
    stop = stop_on_signals()
    try:
        # Start-up mistakes are one line (StartupError, SettingsError), before any polling.
        await check_reachable(backends, settings)
        await seed_feeds(backends, settings)
        async with running_poller(settings, backends, self_url=self_url_from_env()):
            log.info("worker polling (%s mode)", backends.mode)
            await stop.wait()
    finally:
        await backends.close()
        stop_metrics()
