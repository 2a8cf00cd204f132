"""Bursts of WebSub pushes for one feed: from the first push to the newest body stored.

    .venv/bin/python -m bench.pushburst [--size 5] [--bursts 15] [--repeat 3]

In one process, no network: a real FeedScheduler and Ingestor over a SQLite store, fed the
end-to-end benchmark's live blog (`wsbench.live_feed`, 34 KB and growing), `size` versions at
once, as a hub does when a newsroom saves several edits in a row (or when the callback's process
stalled and the pushes piled up). Each burst is `size` concurrent `ingest_pushed` calls, which is
what the callback hands on. The baseline is the same bursts with the replacement of a waiting push
turned off in this process (`_QueuedPush.replace` answers False), so every body is read and stored
in turn, as before. Alternating repetitions (liveupdates, baseline, ...); medians and maxima in
ms. Not part of `bench.run`: it measures one behaviour of the push path, not a target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping

from bench.wsbench import live_feed
from liveupdates.backends import open_url
from liveupdates.models import FeedConfig
from liveupdates.settings import Settings
from workers import poller


def _never(self: poller._QueuedPush, body: bytes, headers: Mapping[str, str]) -> bool:
    return False


async def session(size: int, bursts: int, *, replace: bool) -> list[float]:
    original = poller._QueuedPush.replace
    if not replace:
        poller._QueuedPush.replace = _never  # type: ignore[method-assign]
    tmp = tempfile.TemporaryDirectory(prefix="lu-pushburst-")
    backends = open_url(f"sqlite://{tmp.name}/lu.sqlite3")
    feed = FeedConfig(id="live", url="https://gazette.example/live.xml", interval_seconds=3600)
    scheduler = poller.FeedScheduler.for_process(Settings(), backends)
    times: list[float] = []
    try:
        await backends.store.upsert_feed(feed)
        await scheduler.ingest_pushed(feed.id, live_feed(0), {}, feed=feed)
        version = 0
        for _ in range(bursts):
            bodies = [live_feed(version + i + 1) for i in range(size)]
            version += size
            started = time.perf_counter()
            await asyncio.gather(
                *(scheduler.ingest_pushed(feed.id, b, {}, feed=feed) for b in bodies)
            )
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)  # a pause between bursts, as between a newsroom's saves
    finally:
        poller._QueuedPush.replace = original  # type: ignore[method-assign]
        await scheduler.aclose()
        await backends.close()
        tmp.cleanup()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--bursts", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"liveupdates": [], "baseline": []}
    for _ in range(args.repeat):
        for name, replace in (("liveupdates", True), ("baseline", False)):
            times = asyncio.run(session(args.size, args.bursts, replace=replace))
            rows[name].append((statistics.median(times), max(times)))
    print(f"bursts of {args.size} pushes, first push -> newest stored, ms (median / max per rep)")
    for name, reps in rows.items():
        print(f"  {name:12}" + "  ".join(f"{m:6.1f} / {x:6.1f}" for m, x in reps))


if __name__ == "__main__":
    main()
