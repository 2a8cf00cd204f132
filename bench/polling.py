"""Polling benchmark, orchestrator side: a loopback FeedServer (threads in this process) serving
`n` feeds, a worker process polling them all once per round with bounded concurrency.

After a warm-up round (every feed 200, stored), each measured round first changes 10% of the feeds
(a new paragraph in one story), so 90% answer 304 and 10% answer 200 with a real change to parse,
diff, store and publish. The baseline round asks the same URLs with the same validators. Rounds
alternate which of the two goes first; each round's pair gives one ratio (median and range
reported, issue 13's targets judged at the range's worst end).
"""

from __future__ import annotations

import random
import time
from typing import Any

import psutil

from bench.payload import news_feed, paragraph, rss
from bench.proc import Child
from bench.stats import percentile

# Longer than the feed server's keep-alive timeout (tests/support/feedserver.py).
SETTLE_SECONDS = 6.0


def run(n: int, rounds: int, concurrency: int = 50, changed: float = 0.1) -> dict[str, Any]:
    """`changed`: the share of feeds changed before each round (0: every poll a 304)."""
    from tests.support.feedserver import FeedServer

    feeds = {i: news_feed(i) for i in range(n)}
    with FeedServer() as server:
        for i, items in feeds.items():
            server.set(f"/f{i}.xml", rss(items), etag=True)
        worker = Child("poll-worker", "bench.poller")
        try:
            proc = psutil.Process(worker.pid)
            worker.call("setup", urls=[server.url(f"/f{i}.xml") for i in range(n)])
            worker.call("ingest_round", timeout=600, concurrency=concurrency)  # warm: all 200
            worker.call("httpx_round", timeout=600, concurrency=concurrency)
            measured: dict[str, list[dict[str, Any]]] = {"ingest": [], "httpx": []}
            rng = random.Random(5)
            step = round(1 / changed) if changed else 0
            for r in range(rounds):
                for i in range(r % step, n, step) if step else ():  # a different share each round
                    items = feeds[i]
                    items[0][2].append(paragraph(rng))
                    server.set(f"/f{i}.xml", rss(items), etag=True)
                order = ["ingest", "httpx"] if r % 2 == 0 else ["httpx", "ingest"]
                for mode in order:
                    # Start each side from the same state: the feed server has closed the
                    # connections the other side left idle (its 5 s socket timeout) and their
                    # threads are gone. Without this pause the side that went second took up to
                    # 3x the CPU per poll of the same side going first.
                    time.sleep(SETTLE_SECONDS)
                    cpu0 = sum(proc.cpu_times()[:2])
                    answer = worker.call(f"{mode}_round", timeout=600, concurrency=concurrency)
                    answer["cpu_s"] = sum(proc.cpu_times()[:2]) - cpu0
                    measured[mode].append(answer)
        finally:
            worker.close()

    def summary(rounds_: list[dict[str, Any]]) -> dict[str, Any]:
        rates = [n / a["seconds"] for a in rounds_]
        cpu = [a["cpu_s"] / n * 1e6 for a in rounds_]
        return {
            "polls_per_s": percentile(rates, 50),
            "polls_per_s_all": rates,
            "cpu_us_per_poll": percentile(cpu, 50),
            "cpu_us_per_poll_all": cpu,
            "statuses": rounds_[-1]["statuses"],
        }

    def paired(key: str) -> dict[str, float]:
        # Each round measures both, one right after the other: the ratio of the pair is what
        # survives the machine's load changing between rounds.
        i, h = summary(measured["ingest"])[f"{key}_all"], summary(measured["httpx"])[f"{key}_all"]
        ratios = [a / b for a, b in zip(i, h, strict=True)]
        return {"median": percentile(ratios, 50), "min": min(ratios), "max": max(ratios)}

    return {
        "feeds": n,
        "rounds": rounds,
        "concurrency": concurrency,
        "changed": changed,
        "ingest": summary(measured["ingest"]),
        "httpx": summary(measured["httpx"]),
        "ratio": {
            "polls_per_s": paired("polls_per_s"),
            "cpu_us_per_poll": paired("cpu_us_per_poll"),
        },
    }
