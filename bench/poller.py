"""Polling worker process: `python -m bench.poller`.

`ingest_round` polls every feed once with the real Fetcher + Ingestor over a SQLiteStore (and an
InMemoryBus, as `liveupdates serve` runs them); `httpx_round` is the baseline: bare conditional
`httpx` GETs of the same URLs with the same concurrency, validators and connection pool limits.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.proc import Handler, child_main
from liveupdates.bus.memory import InMemoryBus
from liveupdates.ingest import Ingestor
from liveupdates.models import FeedConfig
from liveupdates.netguard.transport import DEFAULT_LIMITS
from liveupdates.runtime import make_fetcher
from liveupdates.settings import load_settings
from liveupdates.store.sqlite import SQLiteStore


class Worker:
    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="lu-bench-poll-")
        self.store = SQLiteStore(Path(self.tmp.name) / "poll.sqlite3")
        self.bus = InMemoryBus(self.store)
        # The benchmark's feeds are on a loopback server, which the address guard refuses unless
        # allowed.
        settings = load_settings({"LIVEUPDATES_FETCH_ALLOW_NETWORKS": "127.0.0.1/32"})
        self.fetcher = make_fetcher(settings)
        self.ingestor = Ingestor(self.store, self.fetcher, publish=self.bus.publish)
        self.feeds: list[FeedConfig] = []
        # The Fetcher's own pool limits (every connection kept alive): with httpx's defaults
        # the baseline would open a new connection for nearly every GET (netguard/transport.py).
        self.client = httpx.AsyncClient(timeout=20.0, limits=DEFAULT_LIMITS)
        self.etags: dict[str, str] = {}

    async def setup(self, args: dict[str, Any]) -> dict[str, Any]:
        self.feeds = [FeedConfig(id=f"f{i}", url=url) for i, url in enumerate(args["urls"])]
        for feed in self.feeds:
            await self.store.upsert_feed(feed)
        return {"feeds": len(self.feeds)}

    async def _round(self, one: Any, concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        statuses: Counter[str] = Counter()

        async def guarded(feed: FeedConfig) -> None:
            async with gate:
                statuses[await one(feed)] += 1

        started = time.perf_counter()
        await asyncio.gather(*(guarded(f) for f in self.feeds))
        return {"seconds": time.perf_counter() - started, "statuses": dict(statuses)}

    async def ingest_round(self, args: dict[str, Any]) -> dict[str, Any]:
        async def one(feed: FeedConfig) -> str:
            report = await self.ingestor.poll(feed)
            return str(report.outcome.status)

        return await self._round(one, args["concurrency"])

    async def httpx_round(self, args: dict[str, Any]) -> dict[str, Any]:
        async def one(feed: FeedConfig) -> str:
            headers = {"If-None-Match": self.etags[feed.url]} if feed.url in self.etags else {}
            response = await self.client.get(feed.url, headers=headers)
            if "etag" in response.headers:
                self.etags[feed.url] = response.headers["etag"]
            return str(response.status_code)

        return await self._round(one, args["concurrency"])

    def commands(self) -> dict[str, Handler]:
        return {
            "setup": self.setup,
            "ingest_round": self.ingest_round,
            "httpx_round": self.httpx_round,
        }

    async def stop(self) -> None:
        await self.client.aclose()
        await self.fetcher.aclose()
        await self.bus.close()
        await self.store.close()
        self.tmp.cleanup()


def main() -> None:
    child_main(Worker, max_seconds=900)


if __name__ == "__main__":
    main()
