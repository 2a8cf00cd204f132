"""SSE load generator: `python -m bench.sseclient`, many raw-socket EventSource readers in one process.

The same client reads liveupdates' `/v1/sse` and Pushpin's held streams (bench/pushpin.py), so the
two servers are timed alike. It is deliberately lean (an asyncio Protocol per connection, no HTTP
library, no JSON decoding): each `"t0":` found in the bytes is one event, and its latency is the
moment its bytes arrived (`data_received`) minus that publish time (same machine, same clock).
Chunked transfer framing lies between events, never inside the number, so it needs no parsing.

Commands: `connect` (open N streams, return once each answered 200 with its headers), `ready`
(how many streams have received an event since the last `arm`), `prune` (close those that have
not), `arm`, `wait`, `close`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any

from bench.proc import Handler, child_main
from bench.receipts import Receipts

T0 = re.compile(rb'"t0":([0-9.eE+-]+)[,}]')
# Longest unfinished `"t0":<float>` kept from one read to the next.
TAIL = 40


class Stream(asyncio.Protocol):
    """One SSE response: headers first, then every event's t0 as its bytes arrive."""

    def __init__(self, load: Load, request: bytes) -> None:
        self.load = load
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.tail = b""
        self.got = 0  # events since the last arm
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.answered.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[: self.head.find(b"\r\n")]
            if b" 200 " not in status + b" ":
                self.answered.set_exception(RuntimeError(status.decode(errors="replace")))
                return
            self.answered.set_result(None)
            data, self.head = self.head[end + 4 :], b""
        load = self.load
        load.bytes += len(data)
        buf = self.tail + data if self.tail else data
        last = 0
        for match in T0.finditer(buf):
            load.latencies.append(now - float(match.group(1)))
            last = match.end()
            self.got += 1
            load.received += 1
        if last:
            load.last = now
            if load.received >= load.expected:
                load.done.set()
        self.tail = buf[max(last, len(buf) - TAIL) :]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.load.closed["lost" if exc else "eof"] += 1
        if not self.answered.done():
            self.answered.set_exception(exc or ConnectionError("closed before answering"))


class Load(Receipts):
    def __init__(self) -> None:
        super().__init__()
        self.streams: list[Stream] = []
        self.bytes = 0  # after the headers, heartbeats and chunk framing included

    async def connect(self, args: dict[str, Any]) -> dict[str, Any]:
        host, port, path, n = args["host"], args["port"], args["path"], args["n"]
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
        gate = asyncio.Semaphore(args.get("concurrency", 50))
        loop = asyncio.get_running_loop()
        failed: Counter[str] = Counter()
        started = time.perf_counter()
        before = len(self.streams)

        async def one() -> None:
            async with gate:
                for attempt in range(3):
                    stream = Stream(self, request)
                    try:
                        await loop.create_connection(lambda s=stream: s, host, port)
                        await asyncio.wait_for(stream.answered, 30)
                        self.streams.append(stream)
                        return
                    except Exception as exc:
                        if stream.transport is not None:
                            stream.transport.abort()
                        if attempt == 2:
                            failed[type(exc).__name__] += 1
                        await asyncio.sleep(0.2)

        await asyncio.gather(*(one() for _ in range(n)))
        return {
            "connected": len(self.streams) - before,
            "failed": dict(failed),
            "seconds": time.perf_counter() - started,
        }

    async def ready(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ready": sum(1 for s in self.streams if s.got), "open": len(self.streams)}

    async def prune(self, args: dict[str, Any]) -> dict[str, Any]:
        """Close the streams that got no event since `arm`: the server answered them but never
        subscribed them (Pushpin under a storm of 5,000, bench/pushpin.py's warm-up)."""
        dead = [s for s in self.streams if not s.got]
        for stream in dead:
            if stream.transport is not None:
                stream.transport.close()
        self.streams = [s for s in self.streams if s.got]
        return {"pruned": len(dead)}

    def alive(self) -> int:
        return sum(1 for s in self.streams if not s.closed)

    def rearm(self) -> None:
        self.bytes = 0
        for stream in self.streams:
            stream.got = 0

    def extra(self) -> dict[str, Any]:
        return {"bytes": self.bytes}

    async def close(self, args: dict[str, Any]) -> dict[str, Any]:
        count = len(self.streams)
        for stream in self.streams:
            if stream.transport is not None:
                stream.transport.close()
        self.streams.clear()
        await asyncio.sleep(0.5)  # let the closes go out before the server is stopped
        return {"closed": count}

    def commands(self) -> dict[str, Handler]:
        return {
            "connect": self.connect,
            "ready": self.ready,
            "prune": self.prune,
            "arm": self.arm,
            "wait": self.wait,
            "close": self.close,
        }

    async def stop(self) -> None:
        for stream in self.streams:
            if stream.transport is not None:
                stream.transport.abort()


def main() -> None:
    child_main(Load, max_seconds=1800)


if __name__ == "__main__":
    main()
