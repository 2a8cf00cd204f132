"""Load generator: `python -m bench.client`, many `websockets` asyncio clients in one process.

Commands: `connect` (open and subscribe N connections), `arm` (expect so many updates per
connection), `wait` (until they all arrived, or the stream stalls), `close`. Each update's latency
is receipt time minus the `t0` the server embedded (same machine, same clock). The cyclic garbage
collector is off between `arm` and the end of `wait`, so client pauses do not count as latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.payload import read_t0
from bench.proc import command_loop, reply_stream
from bench.receipts import Receipts


class Load(Receipts):
    def __init__(self) -> None:
        super().__init__()
        self.conns: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                now = time.time()
                t0 = read_t0(frame)  # type: ignore[arg-type]
                if t0 is None:
                    continue
                self.latencies.append(now - t0)
                if not self.received:
                    self.first = now
                self.received += 1
                self.last = now
                if self.received >= self.expected:
                    self.done.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed[str(ws.close_code)] += 1

    async def connect(self, args: dict[str, Any]) -> dict[str, Any]:
        url, channel, n = args["url"], args["channel"], args["n"]
        subscribe = json.dumps({"type": "subscribe", "channel": channel})
        gate = asyncio.Semaphore(args.get("concurrency", 50))
        # A loopback source address of its own (127.0.0.2, ...): one address reaches one server
        # port from ~28k ephemeral ports only, so the 100k run spreads its clients over several.
        source = {"local_addr": (args["source"], 0)} if args.get("source") else {}
        failed: Counter[str] = Counter()
        started = time.perf_counter()

        async def one() -> None:
            async with gate:
                for attempt in range(3):
                    try:
                        ws = await connect(
                            url,
                            compression=None,
                            max_size=None,
                            ping_interval=None,
                            open_timeout=30,
                            close_timeout=5,
                            **source,
                        )
                        await ws.send(subscribe)
                        answer = await asyncio.wait_for(ws.recv(), 30)
                        if '"subscribed"' not in answer:  # type: ignore[operator]
                            raise RuntimeError(f"unexpected answer {answer[:80]!r}")
                        self.conns.append(ws)
                        self.readers.append(asyncio.create_task(self._read(ws)))
                        return
                    except Exception as exc:
                        if attempt == 2:
                            failed[type(exc).__name__] += 1
                        await asyncio.sleep(0.2)

        await asyncio.gather(*(one() for _ in range(n)))
        return {
            "connected": len(self.conns),
            "failed": dict(failed),
            "seconds": time.perf_counter() - started,
        }

    def alive(self) -> int:
        return sum(1 for r in self.readers if not r.done())

    async def close(self, args: dict[str, Any]) -> dict[str, Any]:
        gate = asyncio.Semaphore(200)

        async def one(ws: ClientConnection) -> None:
            async with gate:
                try:
                    await asyncio.wait_for(ws.close(), 5)
                except Exception:
                    ws.transport.abort()

        await asyncio.gather(*(one(ws) for ws in self.conns))
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        count = len(self.conns)
        self.conns.clear()
        self.readers.clear()
        return {"closed": count}


async def amain(max_seconds: float) -> None:
    out = reply_stream()
    load = Load()
    try:
        await command_loop(
            out,
            {"connect": load.connect, "arm": load.arm, "wait": load.wait, "close": load.close},
            max_seconds=max_seconds,
            hello={},
        )
    finally:
        for ws in load.conns:
            ws.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, default=1800)
    asyncio.run(amain(parser.parse_args().max_seconds))


if __name__ == "__main__":
    main()
