"""WebSub benchmark: hub POST -> receipt, next to poll end -> receipt and the hub alone, in one run.

One hub server process (the real app, bench/server.py) with N subscribed clients in two client
processes, read by the lean receiver (bench/receiver.py: receipt = when the frame's bytes reached
the client's socket, so the clients' own CPU on the shared cores is not counted as the server's).
Each repetition runs three phases on the same clients, feed and pace, so they compare directly:

- poll: the end-to-end pipeline (`t0` = the fetch of the changed feed returned);
- push: the next versions of the same feed through the real WebSub callback
  (bench/websub_server.py: `t0` = just before the hub's POST), with a verified subscription and
  the scheduler's `ingest_pushed`, as `liveupdates serve` runs it;
- alone: the hub alone, the push phase's events appended again through store + bus (`t0` just
  before the store write): what fan-out and delivery cost without any feed work.

Targets: push p99 <= 50 ms (issue 12), poll end -> receipt p99 <= 50 ms (issue 13).

    .venv/bin/python -m bench.run --only websub [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.proc import call_all
from bench.stats import percentile
from bench.wsbench import Rig, live_feed

PHASES = ("poll", "push", "alone")


def _median(runs: list[dict[str, Any]], changes: int) -> dict[str, Any]:
    """Median p50/p99 and server CPU ms per update over repetitions, with (min, max); counts
    summed. The CPU figure moves far less with the machine's load than the latencies do."""
    out: dict[str, Any] = {
        "received": sum(r["received"] for r in runs),
        "expected": sum(r["expected"] for r in runs),
    }
    for run in runs:
        run["cpu_ms"] = run["server_cpu_s"] / changes * 1000
    for key in ("p50_ms", "p99_ms", "cpu_ms"):
        values = [r[key] for r in runs]
        out[key] = statistics.median(values)
        out[key.replace("_ms", "_range")] = (min(values), max(values))
    return out


def websub_session(
    n: int,
    changes: int,
    interval: float,
    *,
    processes: int = 2,
    repeat: int = 3,
    receiver: str = "kernel",
) -> dict[str, Any]:
    from tests.support.feedserver import FeedServer

    version = 0
    with FeedServer() as feeds:
        feeds.set("/live.xml", live_feed(0), etag=True)
        rig = Rig("hub", n, processes, f"websub{n}")
        try:
            call_all(rig.loaders, "receiver", kind=receiver)
            setup = rig.server.call("e2e_setup", url=feeds.url("/live.xml"))
            rig.channel = setup["channel"]
            rig.server.call("websub_setup")
            connected = rig.connect(n)["connected"]
            time.sleep(1.0)

            def paced(step: Callable[[int], None]) -> None:
                start = time.perf_counter()
                for i in range(changes):
                    delay = start + i * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    step(i)

            polls: list[dict[str, Any]] = []
            pushes: list[dict[str, Any]] = []

            def poll(i: int) -> None:
                feeds.set("/live.xml", live_feed(version + i + 1), etag=True)
                polls.append(rig.server.call("e2e_poll"))

            def push(i: int) -> None:
                body = live_feed(version + i + 1)
                feeds.set("/live.xml", body, etag=True)  # the origin serves what the hub pushes
                pushes.append(rig.server.call("websub_push", body=body.hex()))

            answer: dict[str, Any] = {}

            def alone() -> None:
                answer.update(
                    rig.server.call("e2e_republish", interval=interval, count=changes, timeout=600)
                )

            reps: list[dict[str, Any]] = []
            stages: dict[str, list[float]] = {"poll": [], "push": []}
            seen = 0
            for _ in range(repeat):
                rig.server.call("gc_pauses")
                rep = {"poll": rig.measure(changes, lambda: paced(poll))}
                rep["poll"]["gc"] = rig.server.call("gc_pauses")
                version += changes
                time.sleep(1.0)
                rig.server.call("gc_pauses")
                rep["push"] = rig.measure(changes, lambda: paced(push))
                rep["push"]["gc"] = rig.server.call("gc_pauses")
                version += changes
                time.sleep(1.0)
                rig.server.call("gc_pauses")
                rep["alone"] = rig.measure(changes, alone)
                rep["alone"]["gc"] = rig.server.call("gc_pauses")
                time.sleep(1.0)
                # fetch end (or POST) -> bus.publish of this repetition's polls, then its pushes
                new = [x * 1000 for x in answer["pipeline"][seen:]]
                seen = len(answer["pipeline"])
                stages["poll"] += new[:changes]
                stages["push"] += new[changes:]
                reps.append(rep)
        finally:
            rig.close()
    return {
        "clients": connected,
        "changes": changes,
        "interval_s": interval,
        "repeat": repeat,
        "receiver": receiver,
        "reps": reps,
        **{phase: _median([r[phase] for r in reps], changes) for phase in PHASES},
        "to_publish_ms": {
            k: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for k, v in stages.items()
        },
        "post_ms_p50": percentile([p["post_ms"] for p in pushes], 50),
        "statuses": sorted({p["status"] for p in pushes}),
        "events_per_poll": [p["events"] for p in polls][:3],
    }
