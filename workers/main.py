"""`liveupdates worker`: the poller process, and the poller that `liveupdates serve` embeds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from liveupdates.ingest import Ingestor, Publish
from liveupdates.runtime import make_fetcher, open_store, seed_feeds, self_url_from_env
from liveupdates.settings import Settings
from liveupdates.store.base import Store
from liveupdates.store.websub import websub_store_for
from liveupdates.websub.client import make_hub_client
from liveupdates.websub.manager import WebSubManager
from workers.claims import claims_for, lease_for
from workers.poller import FeedScheduler

log = logging.getLogger("liveupdates.worker")

# How often the worker re-reads the feed list, so ops changes act without a restart.
SYNC_SECONDS = 0.5


@contextlib.asynccontextmanager
async def running_poller(
    settings: Settings,
    store: Store,
    *,
    publish: Publish | None = None,
    self_url: str | None = None,
) -> AsyncIterator[FeedScheduler]:
    """Poll every enabled feed of `store` on its schedule until the block exits."""
    fetcher = make_fetcher(settings)
    websub = make_websub_manager(settings, store)
    ingestor = Ingestor(
        store,
        fetcher,
        publish=publish,
        flipflop_window=settings.poll_flipflop_window,
        self_url=self_url,
        on_fetched=websub.on_fetched if websub else None,
    )
    scheduler = FeedScheduler(
        ingestor,
        jitter=settings.poll_jitter,
        max_backoff=settings.poll_max_backoff,
        min_interval=settings.poll_min_interval,
        max_interval=settings.poll_max_interval,
        # Shared with every other worker on the same Redis; always granted in embedded mode.
        claims=claims_for(store),
        lease_seconds=lease_for(settings.fetch_total_timeout),
        poll_floor=websub.poll_floor if websub else None,
    )
    await scheduler.sync(await store.list_feeds())
    scheduler.start()
    syncing = asyncio.create_task(_keep_in_sync(scheduler, store))
    try:
        async with contextlib.AsyncExitStack() as stack:
            if websub is not None:
                websub.deliver = scheduler.ingest_pushed
                websub.poll_now = scheduler.poll_soon
                await stack.enter_async_context(websub.running())
            yield scheduler
    finally:
        syncing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncing
        scheduler.shutdown()
        await fetcher.aclose()


def make_websub_manager(settings: Settings, store: Store) -> WebSubManager | None:
    """The WebSub subscriber of this poller process; None (WebSub off) without public_url."""
    if not settings.public_url:
        return None
    return WebSubManager(settings, store, websub_store_for(store), make_hub_client(settings))


async def _keep_in_sync(scheduler: FeedScheduler, store: Store) -> None:
    while True:
        await asyncio.sleep(SYNC_SECONDS)
        try:
            await scheduler.sync(await store.list_feeds())
        except Exception:
            # The store may be briefly unreachable (Redis restart); keep the current schedule.
            log.exception("could not refresh the feed list")


async def run_worker(settings: Settings) -> None:
    backends = await open_store(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await seed_feeds(backends.store, settings)
        async with running_poller(settings, backends.store, self_url=self_url_from_env()):
            log.info("worker polling (%s mode)", backends.mode)
            await stop.wait()
    finally:
        await backends.close()
