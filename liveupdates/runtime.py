"""What every process does at start, whatever its backends: seed the feed list, build its fetcher."""

from __future__ import annotations

import logging
import os

from liveupdates.backends import Backends, Signal, SignalKind
from liveupdates.feeds.config import load_feeds
from liveupdates.feeds.fetch import Fetcher
from liveupdates.settings import Settings

log = logging.getLogger("liveupdates")

DEFAULT_SELF_URL = "http://127.0.0.1:8000"


def self_url_from_env() -> str:
    """The service's base URL for `{self}` feeds in a process that does not serve it itself
    (`worker`, `poll`): $LIVEUPDATES_URL, else the default `serve` address."""
    return os.environ.get("LIVEUPDATES_URL", DEFAULT_SELF_URL)


async def seed_feeds(backends: Backends, settings: Settings) -> int:
    """Load the feeds file into an empty store; afterwards ops own the feed list. Returns count."""
    if await backends.store.list_feeds():
        return 0
    feeds = load_feeds(settings.feeds_path, settings)
    for feed in feeds:
        await backends.store.upsert_feed(feed)
    log.info("seeded %d feed(s) from %s", len(feeds), settings.feeds_path)
    await backends.signals.send(Signal(SignalKind.FEEDS))  # to workers already running
    return len(feeds)


def make_fetcher(settings: Settings) -> Fetcher:
    return Fetcher(
        connect_timeout=settings.fetch_connect_timeout,
        total_timeout=settings.fetch_total_timeout,
        max_body_bytes=settings.fetch_max_body_bytes,
        max_redirects=settings.fetch_max_redirects,
        allow_networks=settings.fetch_allow_networks,
    )
