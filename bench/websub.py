"""WebSub benchmark: hub POST -> WebSocket receipt, next to poll end -> receipt, in one run.

One hub server process (the real app, bench/server.py) with N subscribed WebSocket clients in two
client processes. Phase 1 polls a loopback feed (the end-to-end benchmark: `t0` = the fetch of
the changed feed returned). Phase 2 pushes the next versions of the same feed through the real
WebSub callback (bench/websub_server.py: `t0` = just before the hub's POST), with a verified
subscription and the scheduler's `ingest_pushed`, as `liveupdates serve` runs it. Same clients,
same feed, same pace, so the two latencies compare directly. Target: push p99 <= 50 ms.

    .venv/bin/python -m bench.run --only websub [--quick]
"""

from __future__ import annotations

import time
from typing import Any

from bench.stats import percentile
from bench.wsbench import Rig, live_feed


def websub_session(n: int, changes: int, interval: float, *, processes: int = 2) -> dict[str, Any]:
    from tests.support.feedserver import FeedServer

    with FeedServer() as feeds:
        feeds.set("/live.xml", live_feed(0), etag=True)
        rig = Rig("hub", n, processes, f"websub{n}")
        try:
            setup = rig.server.call("e2e_setup", url=feeds.url("/live.xml"))
            rig.channel = setup["channel"]
            rig.server.call("websub_setup")
            connected = rig.connect(n)["connected"]
            time.sleep(1.0)

            def paced(step: Any) -> None:
                start = time.perf_counter()
                for i in range(changes):
                    delay = start + i * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    step(i)

            polls: list[dict[str, Any]] = []

            def poll(i: int) -> None:
                feeds.set("/live.xml", live_feed(i + 1), etag=True)
                polls.append(rig.server.call("e2e_poll"))

            polled = rig.measure(changes, lambda: paced(poll))
            time.sleep(1.0)
            pushes: list[dict[str, Any]] = []

            def push(i: int) -> None:
                body = live_feed(changes + i + 1)
                feeds.set("/live.xml", body, etag=True)  # the origin serves what the hub pushes
                pushes.append(rig.server.call("websub_push", body=body.hex()))

            pushed = rig.measure(changes, lambda: paced(push))
        finally:
            rig.close()
    return {
        "clients": connected,
        "changes": changes,
        "interval_s": interval,
        "push": pushed,
        "poll": polled,
        "post_ms_p50": percentile([p["post_ms"] for p in pushes], 50),
        "statuses": sorted({p["status"] for p in pushes}),
        "events_per_poll": [p["events"] for p in polls][:3],
    }
