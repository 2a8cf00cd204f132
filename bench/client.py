"""Load generator: `python -m bench.client`, many `websockets` asyncio clients in one process.

Commands: `receiver` (how later connections are read, below), `connect` (open and subscribe N
connections), `arm` (expect so many updates per connection), `wait` (until they all arrived, or the
stream stalls), `close`. Each update's latency is receipt time minus the `t0` the server embedded
(same machine, same clock). Receipt is when a `websockets` client's reader gets the frame, or with
`receiver kind=kernel` when the frame's bytes reached the socket (bench/receiver.py: the lean
receiver of the latency benchmarks, which leaves the client's own CPU out). The cyclic garbage
collector is off between `arm` and the end of `wait`, so client pauses do not count as latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.payload import read_t0
from bench.proc import Handler, child_main
from bench.receipts import Receipts
from bench.receiver import Receiver


async def _bound(url: str, source: str) -> socket.socket:
    """A TCP socket connected to `url`'s host and port from the loopback address `source`.

    With IP_BIND_ADDRESS_NO_PORT, bind() keeps the address and leaves the port to connect(): a
    plain bind((addr, 0)) must find a port free for every destination, a scan of the range in
    the kernel for each socket once thousands are bound to the address."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        connecting = asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        await asyncio.wait_for(connecting, 30)
    except BaseException:
        sock.close()
        raise
    return sock


class Load(Receipts):
    def __init__(self) -> None:
        super().__init__()
        self.conns: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.lean: Receiver | None = None
        self._loop = asyncio.get_running_loop()

    def _received(self, now: float, t0: float) -> None:
        self.latencies.append(now - t0)
        self.arrivals.append(now)
        if not self.received:
            self.first = now
        self.received += 1
        self.last = now
        if self.received >= self.expected:
            self.done.set()

    def _lean_frame(self, stamp: float, payload: bytes) -> None:
        # In the receiver's thread; its own CPU does not move `stamp` (the kernel's).
        t0 = read_t0(payload.decode("utf-8", "replace"))
        if t0 is not None:
            self._loop.call_soon_threadsafe(self._received, stamp, t0)

    async def receiver(self, args: dict[str, Any]) -> dict[str, Any]:
        """kind "kernel": connections opened from now on are read by the lean receiver."""
        if args["kind"] == "kernel" and self.lean is None:
            self.lean = Receiver(self._lean_frame)
        return {"kind": "kernel" if self.lean is not None else "websockets"}

    def _hand_over(self, ws: ClientConnection) -> None:
        """Give the subscribed connection's socket to the lean receiver; the library lets go."""
        assert self.lean is not None
        own = ws.transport.get_extra_info("socket")
        self.lean.add(socket.socket(fileno=os.dup(own.fileno())))
        ws.transport.abort()  # closes the library's descriptor only: the duplicate stays open

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                now = time.time()
                t0 = read_t0(frame)  # type: ignore[arg-type]
                if t0 is not None:
                    self._received(now, t0)
        except ConnectionClosed:
            pass
        finally:
            self.closed[str(ws.close_code)] += 1

    async def connect(self, args: dict[str, Any]) -> dict[str, Any]:
        url, channel, n = args["url"], args["channel"], args["n"]
        subscribe = json.dumps({"type": "subscribe", "channel": channel})
        gate = asyncio.Semaphore(args.get("concurrency", 50))
        # Loopback source addresses of its own (127.0.0.2, ...), taken in turn: one address
        # reaches one server port from the ~28k ephemeral ports of `ip_local_port_range`, and
        # connect() picks odd ports first: past ~14,000 on one address each connect() scans
        # that half in the kernel (__inet_check_established), and the 100k storm slowed from
        # ~1,700 to ~300 connections/s on the client side alone. So <= 8,000 per address.
        sources: list[str] = args.get("sources", [])
        turn = itertools.cycle(sources)
        failed: Counter[str] = Counter()
        started = time.perf_counter()

        async def one() -> None:
            async with gate:
                for attempt in range(3):
                    try:
                        extra = {"sock": await _bound(url, next(turn))} if sources else {}
                        ws = await connect(
                            url,
                            compression=None,
                            max_size=None,
                            ping_interval=None,
                            open_timeout=30,
                            close_timeout=5,
                            **extra,
                        )
                        await ws.send(subscribe)
                        answer = await asyncio.wait_for(ws.recv(), 30)
                        if '"subscribed"' not in answer:  # type: ignore[operator]
                            raise RuntimeError(f"unexpected answer {answer[:80]!r}")
                        if self.lean is not None:
                            self._hand_over(ws)
                            return
                        self.conns.append(ws)
                        self.readers.append(asyncio.create_task(self._read(ws)))
                        return
                    except Exception as exc:
                        if attempt == 2:
                            failed[type(exc).__name__] += 1
                        await asyncio.sleep(0.2)

        await asyncio.gather(*(one() for _ in range(n)))
        return {
            "connected": self.alive(),
            "failed": dict(failed),
            "seconds": time.perf_counter() - started,
        }

    def alive(self) -> int:
        lean = self.lean.alive() if self.lean is not None else 0
        return lean + sum(1 for r in self.readers if not r.done())

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
        if self.lean is not None:
            count += self.lean.close()
            self.lean = None
        self.conns.clear()
        self.readers.clear()
        return {"closed": count}

    def commands(self) -> dict[str, Handler]:
        return {
            "receiver": self.receiver,
            "connect": self.connect,
            "arm": self.arm,
            "wait": self.wait,
            "close": self.close,
        }

    async def stop(self) -> None:
        for ws in self.conns:
            ws.transport.abort()


def main() -> None:
    child_main(Load, max_seconds=1800)


if __name__ == "__main__":
    main()
