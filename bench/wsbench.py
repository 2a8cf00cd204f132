"""Orchestrator side of the WebSocket benchmarks: fan-out, capacity and end to end.

One session = one server process (hub or bare) + client processes, all started here and stopped
at the end of the session. The server's CPU time and RSS are read with psutil on its pid.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.payload import news_feed, paragraph, rss
from bench.proc import Child, call_all
from bench.stats import percentile


@dataclass
class Phase:
    name: str
    count: int  # updates published
    rate: float | None  # updates per second; None: as fast as possible
    size: int = 1000
    repeat: int = 1  # runs pooled into one figure (totals over totals, latencies pooled)


@dataclass
class Session:
    kind: str
    clients: int
    connected: int = 0
    connect_seconds: float = 0.0
    rss_before: int = 0
    rss_after: int = 0
    rss_idle_per_conn: float = 0.0  # bytes
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def server_rss(server: Child, proc: psutil.Process) -> int:
    server.call("gc")
    time.sleep(0.5)
    server.call("gc")
    return proc.memory_info().rss


def summarise(answers: list[dict[str, Any]], started: float, cpu: float) -> dict[str, Any]:
    last = max((a["last"] for a in answers if a["last"]), default=started)
    return pooled([(answers, max(1e-9, last - started), cpu)])


def pooled(runs: list[tuple[list[dict[str, Any]], float, float]]) -> dict[str, Any]:
    """One figure from runs of (client answers, wall seconds, server CPU seconds)."""
    answers = [a for run in runs for a in run[0]]
    wall = sum(run[1] for run in runs)
    cpu = sum(run[2] for run in runs)
    latencies = [x for a in answers for x in a["latencies"]]
    # From the moment the run was started (the publish command sent), not from each update's
    # publish time: in a burst, the bare server stamps its update k only after sending update
    # k-1 to every reader, so its later updates look fresh however long readers waited for them
    # (coordinated omission). Both servers are measured from the same start.
    waits = [x for a in answers for x in a.get("waits", ())]
    received = sum(a["received"] for a in answers)
    expected = sum(a["expected"] for a in answers)
    closed: dict[str, int] = {}
    for a in answers:
        for code, n in a["closed"].items():
            closed[code] = closed.get(code, 0) + n
    return {
        "received": received,
        "expected": expected,
        "server_cpu_s": cpu,
        "wall_s": wall,
        "msgs_per_s": received / wall,
        "msgs_per_cpu_s": received / cpu if cpu > 0 else 0.0,
        "us_per_frame": cpu / received * 1e6 if received else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else 0.0,
        "wait_p50_ms": percentile(waits, 50) * 1000,
        "wait_p99_ms": percentile(waits, 99) * 1000,
        "closed": closed,
        "runs": len(runs),
    }


class Rig:
    """A server process and its client processes with `n` subscribed connections."""

    def __init__(self, kind: str, n: int, processes: int, tag: str) -> None:
        self.kind, self.n = kind, n
        self.server = Child(f"{tag}-{kind}-server", "bench.server", kind)
        self.proc = psutil.Process(self.server.pid)
        self.url = f"ws://127.0.0.1:{self.server.hello['port']}/v1/ws"
        self.channel: str = self.server.hello["channel"]
        self.loaders: list[Child] = []
        try:
            self.loaders = [
                Child(f"{tag}-{kind}-client{i}", "bench.client") for i in range(processes)
            ]
        except Exception:
            self.close()
            raise

    def connect(self, n: int) -> dict[str, Any]:
        """Open `n` more connections, spread over the client processes."""
        shares = [
            n // len(self.loaders) + (i < n % len(self.loaders)) for i in range(len(self.loaders))
        ]
        started = time.perf_counter()
        for loader, share in zip(self.loaders, shares, strict=True):
            loader.send("connect", url=self.url, channel=self.channel, n=share)
        answers = [loader.result(timeout=600) for loader in self.loaders]
        failed: dict[str, int] = {}
        for a in answers:
            for name, count in a["failed"].items():
                failed[name] = failed.get(name, 0) + count
        return {
            "connected": sum(a["connected"] for a in answers),
            "failed": failed,
            "seconds": time.perf_counter() - started,
        }

    def run_once(
        self, per_conn: int, start: Any, timeout: float = 300
    ) -> tuple[list[dict[str, Any]], float, float]:
        """Arm the clients for `per_conn` updates each, run `start()`, wait for delivery.

        Returns (client answers, wall seconds to the last receipt, server CPU seconds)."""
        call_all(self.loaders, "arm", per_conn=per_conn)
        cpu0 = cpu_seconds(self.proc)
        started = time.time()
        start()
        answers = call_all(self.loaders, "wait", timeout=timeout + 30, timeout_s=timeout)
        cpu = cpu_seconds(self.proc) - cpu0
        for a in answers:
            a["waits"] = [t - started for t in a.pop("arrivals", ())]
        last = max((a["last"] for a in answers if a["last"]), default=started)
        return answers, max(1e-9, last - started), cpu

    def measure(self, per_conn: int, start: Any, timeout: float = 300) -> dict[str, Any]:
        return pooled([self.run_once(per_conn, start, timeout)])

    def close(self) -> None:
        for loader in self.loaders:
            with contextlib.suppress(Exception):
                loader.call("close", timeout=120)
            loader.close()
        self.server.close()


def fanout_session(
    kind: str,
    n: int,
    phases: list[Phase],
    *,
    processes: int = 2,
    measure_rss: bool = True,
    receiver: str = "websockets",
) -> Session:
    """`receiver`: as in `e2e_session`."""
    session = Session(kind, n)
    rig = Rig(kind, n, processes, f"fanout{n}")
    try:
        if receiver != "websockets":
            call_all(rig.loaders, "receiver", kind=receiver)
        warm = min(n, 10 * processes)
        rig.connect(warm)
        session.rss_before = server_rss(rig.server, rig.proc) if measure_rss else 0
        got = rig.connect(n - warm)
        session.connected = warm + got["connected"]
        session.connect_seconds = got["seconds"]
        if got["failed"]:
            print(f"    {kind}: {sum(got['failed'].values())} connections failed: {got['failed']}")
        if measure_rss:
            time.sleep(1.0)
            session.rss_after = server_rss(rig.server, rig.proc)
            added = session.connected - warm
            session.rss_idle_per_conn = (session.rss_after - session.rss_before) / max(1, added)
        for phase in phases:
            time.sleep(1.0)

            def publish(phase: Phase = phase) -> None:
                rig.server.call(
                    "publish", timeout=600, count=phase.count, rate=phase.rate, size=phase.size
                )

            runs = []
            for i in range(phase.repeat):
                if i:
                    time.sleep(1.0)
                runs.append(rig.run_once(phase.count, publish))
            result = pooled(runs)
            result.update(count=phase.count, rate=phase.rate)
            session.phases[phase.name] = result
    finally:
        rig.close()
    return session


# -- end to end -----------------------------------------------------------------------------------


def live_feed(version: int, base: int = 30) -> bytes:
    """A feed of 10 stories plus a live blog that gains one paragraph (at the top) per version."""
    import random

    rng = random.Random(7)
    live = [paragraph(rng) for _ in range(base)]
    extra = [f"Update {v}: " + paragraph(random.Random(1000 + v), 2) for v in range(version, 0, -1)]
    items = [("live-blog", "Live: storm closes the Saltmarsh Bridge", extra + live)]
    return rss(items + news_feed(11, items=10))


def e2e_session(
    n: int, changes: int, interval: float, *, processes: int = 2, receiver: str = "kernel"
) -> dict[str, Any]:
    """`receiver`: "kernel" (receipt = the frame's bytes reached the client's socket, as in
    bench/websub.py, so the client processes' own CPU on the shared cores is left out) or
    "websockets" (a Python `websockets` client's reader got the frame)."""
    from tests.support.feedserver import FeedServer

    with FeedServer() as feeds:
        feeds.set("/live.xml", live_feed(0), etag=True)
        rig = Rig("hub", n, processes, f"e2e{n}")
        try:
            call_all(rig.loaders, "receiver", kind=receiver)
            setup = rig.server.call("e2e_setup", url=feeds.url("/live.xml"))
            rig.channel = setup["channel"]
            got = rig.connect(n)
            connected = got["connected"]
            time.sleep(1.0)

            polls: list[dict[str, Any]] = []

            def run_polls() -> None:
                start = time.perf_counter()
                for v in range(1, changes + 1):
                    delay = start + (v - 1) * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    feeds.set("/live.xml", live_feed(v), etag=True)
                    polls.append(rig.server.call("e2e_poll"))

            rig.server.call("gc_pauses")
            pipeline = rig.measure(changes, run_polls)
            pipeline["gc"] = rig.server.call("gc_pauses")
            time.sleep(1.0)
            answer: dict[str, Any] = {}

            def republish() -> None:
                answer.update(rig.server.call("e2e_republish", interval=interval, timeout=600))

            alone = rig.measure(changes, republish)
            alone["gc"] = rig.server.call("gc_pauses")
        finally:
            rig.close()
    stages = [x * 1000 for x in answer.get("pipeline", [])]
    parse_ms, normalise_ms = _parse_costs(live_feed(changes))
    return {
        "clients": connected,
        "receiver": receiver,
        "changes": changes,
        "interval_s": interval,
        "pipeline": pipeline,
        "hub_alone": alone,
        "poll_ms_p50": percentile([p["poll_ms"] for p in polls], 50),
        "fetch_end_to_publish_ms_p50": percentile(stages, 50),
        "fetch_end_to_publish_ms_p99": percentile(stages, 99),
        "events_per_poll": [p["events"] for p in polls][:3],
        # In this process, on the last feed body: two stages of what fetch end -> publish holds.
        "parse_ms_p50": parse_ms,
        "normalise_ms_p50": normalise_ms,
    }


def _parse_costs(body: bytes, repeat: int = 9) -> tuple[float, float]:
    from liveupdates.feeds.normalise import normalise_entry
    from liveupdates.feeds.parse import parse_feed

    parse, normalise = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        parsed = parse_feed(body, {}, "https://gazette.example/live.xml")
        middle = time.perf_counter()
        for entry in parsed.entries:
            normalise_entry(entry, "e2efeed")
        parse.append((middle - start) * 1000)
        normalise.append((time.perf_counter() - middle) * 1000)
    return percentile(parse, 50), percentile(normalise, 50)
