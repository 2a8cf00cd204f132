"""What a load-generating client process counts while armed, shared by the WebSocket client
(bench/client.py) and the SSE client (bench/sseclient.py): the `arm` and `wait` commands."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections import Counter
from typing import Any

MAX_SAMPLES = 100_000


class Receipts:
    """Latencies and counts of the events received since `arm`; subclasses add to them as
    events arrive and say how many of their connections are still open (`alive`)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        # Receipt times (WebSocket client): the orchestrator measures a burst from its start.
        self.arrivals: list[float] = []
        self.received = 0
        self.expected = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()
        self.closed: Counter[str] = Counter()

    def alive(self) -> int:
        raise NotImplementedError

    def rearm(self) -> None:
        """Per-connection counts to reset at `arm`."""

    def extra(self) -> dict[str, Any]:
        """More figures for `wait`'s answer."""
        return {}

    async def arm(self, args: dict[str, Any]) -> dict[str, Any]:
        # A full collection over thousands of client connections stops this process for up to a
        # second: that is the load generator's pause, not the server's latency. Measure without it.
        gc.collect()
        gc.freeze()
        gc.disable()
        alive = self.alive()
        self.expected = alive * args["per_conn"]
        self.latencies = []
        self.arrivals = []
        self.received = 0
        self.first = self.last = 0.0
        self.rearm()
        self.done.clear()
        self.closed.clear()
        return {"alive": alive, "expected": self.expected}

    async def wait(self, args: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + args.get("timeout_s", 120)
        stall = args.get("stall", 10)
        seen, progress = -1, time.monotonic()
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.received != seen:
                seen, progress = self.received, time.monotonic()
            elif time.monotonic() - progress > stall:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), 0.5)
        gc.enable()
        samples, arrivals = self.latencies, self.arrivals
        if len(samples) > MAX_SAMPLES:
            samples = random.sample(samples, MAX_SAMPLES)
        if len(arrivals) > MAX_SAMPLES:
            arrivals = random.sample(arrivals, MAX_SAMPLES)
        return {
            "received": self.received,
            "expected": self.expected,
            "first": self.first,
            "last": self.last,
            "closed": dict(self.closed),
            "latencies": [round(x, 6) for x in samples],
            "arrivals": arrivals,
            "count": len(self.latencies),
            **self.extra(),
        }
