"""The end-to-end benchmark's half inside the hub process: a real Ingestor polling a loopback feed.

`t0` in each published event is the moment the fetch of the changed feed returned (the end of the
poll's HTTP part): parse, normalise, identity, diff, store write, bus publish, fan-out and delivery
all count. The baseline (`republish`) sends the same events through store + bus alone, `t0` taken
just before the store write, as the fan-out benchmark does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from liveupdates.bus.memory import InMemoryBus
from liveupdates.feeds.fetch import Fetcher, FetchResult
from liveupdates.ingest import Ingestor
from liveupdates.models import FeedConfig, FetchState, LogEntry
from liveupdates.store.sqlite import SQLiteStore

E2E_FEED = "e2efeed"
LIVE_GUID = "live-blog"


class StampingFetcher(Fetcher):
    """The real Fetcher; remembers when the last fetch returned."""

    fetch_end = 0.0

    async def fetch(
        self, url: str, state: FetchState, *, exempt_origin: str | None = None
    ) -> FetchResult:
        result = await super().fetch(url, state, exempt_origin=exempt_origin)
        self.fetch_end = time.time()
        return result


def stamp(event: dict[str, Any], t0: float) -> None:
    """Put t0 first in the event (in place), where clients look for it."""
    rest = dict(event)
    rest.pop("t0", None)
    event.clear()
    event["t0"] = t0
    event.update(rest)


class StampingStore:
    """The store, putting `t0` (the last fetch's end) into each event before it is written: on
    Redis the web processes read the events from the store's streams, not from this process's
    publish, so the stamp has to be in what is stored (bench/redisbench.py)."""

    def __init__(self, store: Any, fetcher: StampingFetcher) -> None:
        self._store = store
        self._fetcher = fetcher

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append_version(
        self,
        snapshot: Any,
        digest: str,
        expected: int,
        events: list[dict[str, Any]],
        channels: list[str],
    ) -> Any:
        for event in events:
            stamp(event, self._fetcher.fetch_end)
        return await self._store.append_version(snapshot, digest, expected, events, channels)


class E2E:
    def __init__(self, store: SQLiteStore, bus: InMemoryBus) -> None:
        self.store = store
        self.bus = bus
        self.fetcher: StampingFetcher | None = None
        self.ingestor: Ingestor | None = None
        self.feed: FeedConfig | None = None
        self.channel = ""
        self.captured: list[dict[str, Any]] = []
        self.pipeline: list[float] = []  # fetch end -> bus.publish, seconds

    async def _publish(self, entries: list[LogEntry]) -> None:
        assert self.fetcher is not None
        now = time.time()
        t0 = self.fetcher.fetch_end
        for entry in entries:
            if entry.channel == self.channel:
                self.captured.append({k: v for k, v in entry.event.items() if k != "t0"})
                self.pipeline.append(now - t0)
            stamp(entry.event, t0)
        await self.bus.publish(entries)

    async def setup(self, args: dict[str, Any]) -> dict[str, Any]:
        # The feed is on a loopback server, which the address guard refuses unless allowed.
        self.fetcher = StampingFetcher(allow_networks=["127.0.0.1/32"])
        store: Any = StampingStore(self.store, self.fetcher)
        self.ingestor = Ingestor(store, self.fetcher, publish=self._publish)
        self.feed = FeedConfig(id=E2E_FEED, url=args["url"], interval_seconds=60.0)
        await self.store.upsert_feed(self.feed)
        report = await self.ingestor.poll(self.feed)
        live = [e for e in report.events if e["story"]["url"].endswith(f"/{LIVE_GUID}")]
        if not live:
            raise RuntimeError(f"first poll found no live story: {report.outcome}")
        self.channel = f"story:{live[0]['story']['id']}"
        self.captured.clear()
        self.pipeline.clear()
        return {"channel": self.channel, "stories": len(report.events)}

    async def poll(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.ingestor is not None and self.feed is not None
        started = time.perf_counter()
        report = await self.ingestor.poll(self.feed)
        return {
            "status": report.outcome.status,
            "events": len(report.events),
            "poll_ms": (time.perf_counter() - started) * 1000,
        }

    async def republish(self, args: dict[str, Any]) -> dict[str, Any]:
        """The baseline: the captured events again (the last `count` of them, or all), through
        store.append_version + bus.publish."""
        interval = args["interval"]
        events = self.captured[-args["count"] :] if args.get("count") else self.captured
        story_id = self.channel.partition(":")[2]
        start = time.perf_counter()
        for i, event in enumerate(events):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            latest = await self.store.latest(story_id)
            assert latest is not None
            event = {"t0": time.time(), **event}
            entries = await self.store.append_version(
                latest.snapshot,
                f"republish-{latest.version + 1}",
                latest.version,
                [event],
                [self.channel],
            )
            await self.bus.publish(entries)
        return {"published": len(events), "pipeline": self.pipeline}

    async def close(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.aclose()
