"""Choosing and opening the backends a process runs on: embedded (SQLite + in-memory bus) or Redis."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from liveupdates import store as stores
from liveupdates.bus.base import Bus
from liveupdates.feeds.config import load_feeds
from liveupdates.feeds.fetch import Fetcher
from liveupdates.settings import Settings
from liveupdates.store.base import Store

log = logging.getLogger("liveupdates")

DEFAULT_SELF_URL = "http://127.0.0.1:8000"


def self_url_from_env() -> str:
    """The service's base URL for `{self}` feeds in a process that does not serve it itself
    (`worker`, `poll`): $LIVEUPDATES_URL, else the default `serve` address."""
    return os.environ.get("LIVEUPDATES_URL", DEFAULT_SELF_URL)


@dataclass
class Backends:
    store: Store
    mode: str  # "embedded" or "redis"

    async def close(self) -> None:
        await self.store.close()


async def open_store(settings: Settings) -> Backends:
    """The configured store: Redis when `redis_url` is set, else SQLite under `data_dir`."""
    store = stores.open_store(
        settings.redis_url or settings.sqlite_path,
        log_retention=settings.retention,
        prefix=settings.redis_prefix,
    )
    return Backends(store, "redis" if settings.redis_url else "embedded")


async def seed_feeds(store: Store, settings: Settings) -> int:
    """Load the feeds file into an empty store; afterwards ops own the feed list. Returns count."""
    if await store.list_feeds():
        return 0
    feeds = load_feeds(settings.feeds_path, settings)
    for feed in feeds:
        await store.upsert_feed(feed)
    log.info("seeded %d feed(s) from %s", len(feeds), settings.feeds_path)
    return len(feeds)


async def open_bus(settings: Settings, store: Store) -> Bus:
    """The bus that matches the store: in-process for SQLite, Redis Streams for Redis."""
    if settings.redis_url:
        from liveupdates.bus.redis import RedisBus
        from liveupdates.store.redis import RedisStore

        if not isinstance(store, RedisStore):
            raise TypeError("the Redis bus reads the streams of a RedisStore")
        return RedisBus(settings.redis_url, store)
    from liveupdates.bus.memory import InMemoryBus

    return InMemoryBus(store)


def make_fetcher(settings: Settings) -> Fetcher:
    return Fetcher(
        connect_timeout=settings.fetch_connect_timeout,
        total_timeout=settings.fetch_total_timeout,
        max_body_bytes=settings.fetch_max_body_bytes,
        max_redirects=settings.fetch_max_redirects,
        allow_networks=settings.fetch_allow_networks,
    )
