"""The Redis path, measured next to the embedded one in the same run (issue 13, item 5).

Redis mode: two web processes and one worker, all on Redis (the Redis store and the Streams bus,
under a key prefix of their own that is deleted afterwards). The web processes are the real app
(bench/server.py `hub` with BENCH_REDIS_URL: `build_app` over `open_backends`, poller off), each
holding half of the N subscribed WebSocket clients, one client process each. The worker is the
same server process with no clients: its real Ingestor polls the loopback feed and its store
writes and bus publishes go to Redis, from where both web processes fan out. Embedded mode: one
hub process on SQLite and the in-memory bus, polling the same feed itself, N clients.

Per mode, with the same feed, pace and client count:
- poll end -> device p50/p99 (`t0` = the fetch of the changed feed returned, as bench/e2e);
- updates appended per second: the polled versions appended again (`store.append_version` +
  `bus.publish`, bench/e2e_server.py `republish`) as fast as the worker goes, every client
  subscribed to the story, and the delivered frames per server core (frames received over the CPU seconds of
  the web processes; in Redis mode the worker's CPU is reported apart);
- frames lost: expected minus received over the whole run (a duplicate would show as more).

Modes alternate (embedded, Redis, embedded, ...) for `repeat` repetitions; the table reports
medians with min-max ranges. Target: Redis p99 <= 1.5x the embedded p99 of the same repetition.

    .venv/bin/python -m bench.redisbench [--quick] [--repeat 3]

Needs a Redis at BENCH_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import ROOT, Child, call_all
from bench.stats import percentile
from bench.wsbench import cpu_seconds, live_feed, pooled

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


class Mode:
    """Web processes (with one client process each) and the process that polls and appends."""

    def __init__(self, name: str, webs: int, tag: str, env: dict[str, str] | None) -> None:
        self.name = name
        saved = dict(os.environ)
        os.environ.update(env or {})
        try:
            self.worker = Child(f"{tag}-{name}-worker", "bench.server", "hub")
            self.webs = (
                [Child(f"{tag}-{name}-web{i}", "bench.server", "hub") for i in range(webs)]
                if env
                else [self.worker]  # embedded: the one process polls and serves
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
        # One client process per web process (embedded: both on the one process).
        self.loaders = [Child(f"{tag}-{name}-client{i}", "bench.client") for i in range(webs)]
        self.web_procs = [psutil.Process(w.pid) for w in self.webs]
        self.worker_proc = psutil.Process(self.worker.pid)
        self.channel = ""

    def setup(self, feed_url: str, n: int) -> int:
        self.channel = self.worker.call("e2e_setup", url=feed_url)["channel"]
        share = [
            n // len(self.loaders) + (i < n % len(self.loaders)) for i in range(len(self.loaders))
        ]
        for i, (loader, k) in enumerate(zip(self.loaders, share, strict=True)):
            web = self.webs[i % len(self.webs)]
            url = f"ws://127.0.0.1:{web.hello['port']}/v1/ws"
            loader.send("connect", url=url, channel=self.channel, n=k)
        return sum(loader.result(timeout=600)["connected"] for loader in self.loaders)

    def run(self, per_conn: int, start: Any) -> dict[str, Any]:
        call_all(self.loaders, "arm", per_conn=per_conn)
        cpu0 = [cpu_seconds(p) for p in self.web_procs]
        wcpu0 = cpu_seconds(self.worker_proc)
        started = time.time()
        start()
        answers = call_all(self.loaders, "wait", timeout=330, timeout_s=300)
        cpu = sum(cpu_seconds(p) - c for p, c in zip(self.web_procs, cpu0, strict=True))
        last = max((a["last"] for a in answers if a["last"]), default=started)
        result = pooled([(answers, max(1e-9, last - started), cpu)])
        result["worker_cpu_s"] = cpu_seconds(self.worker_proc) - wcpu0
        return result

    def close(self) -> None:
        for loader in self.loaders:
            with contextlib.suppress(Exception):
                loader.call("close", timeout=120)
            loader.close()
        for child in {id(c): c for c in [*self.webs, self.worker]}.values():
            child.close()


def one_mode(
    name: str, env: dict[str, str] | None, n: int, changes: int, interval: float
) -> dict[str, Any]:
    from tests.support.feedserver import FeedServer

    with FeedServer() as feeds:
        feeds.set("/live.xml", live_feed(0), etag=True)
        mode = Mode(name, 2, f"redis{n}", env)
        try:
            connected = mode.setup(feeds.url("/live.xml"), n)
            time.sleep(1.0)

            def polls() -> None:
                start = time.perf_counter()
                for v in range(1, changes + 1):
                    delay = start + (v - 1) * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    feeds.set("/live.xml", live_feed(v), etag=True)
                    mode.worker.call("e2e_poll")

            polled = mode.run(changes, polls)
            time.sleep(1.0)
            took: list[float] = []

            def appends() -> None:
                # The polled versions again, appended (store + bus) as fast as the worker goes.
                started = time.perf_counter()
                mode.worker.call("e2e_republish", timeout=600, interval=0)
                took.append(time.perf_counter() - started)

            burst_result = mode.run(changes, appends)
            burst_result["appended_per_s"] = changes / took[0]
        finally:
            mode.close()
    return {"clients": connected, "poll": polled, "burst": burst_result}


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def run(n: int, changes: int, interval: float, repeat: int) -> dict[str, Any]:
    url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    reps: list[dict[str, Any]] = []
    for r in range(repeat):
        rep: dict[str, Any] = {}
        order = ["embedded", "redis"] if r % 2 == 0 else ["redis", "embedded"]
        for name in order:
            print(f"redis bench: repetition {r + 1}, {name}, {n} clients ...", flush=True)
            if name == "redis":
                prefix = f"lu-bench-{secrets.token_hex(4)}:"
                env = {"BENCH_REDIS_URL": url, "BENCH_REDIS_PREFIX": prefix}
                try:
                    rep[name] = one_mode(name, env, n, changes, interval)
                finally:
                    _delete_prefix(url, prefix)
            else:
                rep[name] = one_mode(name, None, n, changes, interval)
        reps.append(rep)
    return {"clients": n, "changes": changes, "interval_s": interval, "reps": reps}


def _spread(values: list[float], digits: int = 1) -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(percentile(values, 50))} ({f.format(min(values))}-{f.format(max(values))})"


def table(result: dict[str, Any]) -> str:
    reps = result["reps"]
    lines = [
        f"Redis path, {result['clients']} clients, {len(reps)} alternating repetitions,"
        f" {os.cpu_count()} cores: median (min-max)",
        "| figure | embedded | Redis (2 web + 1 worker) | ratio |",
        "|---|---|---|---|",
    ]

    def row(label: str, pick: Any, ratio: bool = True) -> None:
        e = [pick(r["embedded"]) for r in reps]
        s = [pick(r["redis"]) for r in reps]
        rs = [b / a if a else float("nan") for a, b in zip(e, s, strict=True)]
        lines.append(
            f"| {label} | {_spread(e)} | {_spread(s)} | {_spread(rs, 2) if ratio else ''} |"
        )

    row("poll end -> device p50 ms", lambda m: m["poll"]["p50_ms"])
    row("poll end -> device p99 ms", lambda m: m["poll"]["p99_ms"])
    row("burst: updates appended/s", lambda m: m["burst"]["appended_per_s"])
    row("burst: delivered frames per web-process core", lambda m: m["burst"]["msgs_per_cpu_s"])
    row("burst: delivery p99 ms", lambda m: m["burst"]["p99_ms"])
    row(
        "worker CPU s in the burst (embedded: the one process)",
        lambda m: m["burst"]["worker_cpu_s"],
        False,
    )
    lost = {
        name: sum(
            r[name][k]["expected"] - r[name][k]["received"] for r in reps for k in ("poll", "burst")
        )
        for name in ("embedded", "redis")
    }
    worst = max(r["redis"]["poll"]["p99_ms"] / r["embedded"]["poll"]["p99_ms"] for r in reps)
    lines.append(f"| frames lost (expected - received) | {lost['embedded']} | {lost['redis']} | |")
    met = worst <= 1.5 and lost["redis"] == 0
    lines.append(
        f"\nTarget p99 via Redis <= 1.5x embedded, none lost: worst {worst:.2f}x -> {'met' if met else 'NOT met'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(100, 10, 0.2, 1) if args.quick else run(1000, 40, 0.25, args.repeat)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-redis{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
