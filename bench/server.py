"""Server process of the WebSocket benchmarks: `python -m bench.server {hub,hubws,bare,asgi}`.

- hub: the production app (`server.build_app`, poller off) under uvicorn via `make_server` with the
  repository's default settings (permessage-deflate off), over a SQLiteStore file and the
  InMemoryBus. Updates go the real way: `store.append_version` then `bus.publish`.
- hubws: the same app and hub, but the clients connect to /v1/ws on the `websockets` library's own
  server (`hub_ws_port`, hub/wsserver.py), which runs next to uvicorn in the same event loop.
- bare: the floor, a server written only with the `websockets` library: it answers a subscribe
  with the same `subscribed` frame and `websockets.broadcast`s the same pre-encoded update frames.
- asgi: an empty Starlette WebSocket endpoint under the same uvicorn settings (capacity only): what
  the ASGI stack the hub runs on costs per connection before the hub adds anything.

Publishing is driven from inside the server process (command `publish`), so the publish time
embedded in each event (`t0`) is taken where the update starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import socket
import tempfile
import time
from typing import Any

from bench.payload import CHANNEL, FEED_ID, STORY_ID, update_event
from bench.proc import command_loop, reply_stream
from liveupdates.hub.protocol import encode_subscribed, encode_update
from liveupdates.models import Snapshot, story_channel


async def pace(start: float, i: int, rate: float | None) -> None:
    if rate:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    else:
        await asyncio.sleep(0)  # as fast as possible, but let the loop write between updates


class Tracer:
    """Diagnostics with BENCH_TRACEMALLOC=1: which lines allocated the memory between two marks."""

    def __init__(self) -> None:
        import os
        import tracemalloc

        self.on = os.environ.get("BENCH_TRACEMALLOC") == "1"
        self.mark: Any = None
        if self.on:
            tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")))

    async def take_mark(self, args: dict[str, Any]) -> dict[str, Any]:
        import tracemalloc

        gc.collect()
        self.mark = tracemalloc.take_snapshot() if self.on else None
        return {"on": self.on}

    async def diff(self, args: dict[str, Any]) -> dict[str, Any]:
        import tracemalloc

        if not self.on or self.mark is None:
            return {"on": False}
        gc.collect()
        stats = tracemalloc.take_snapshot().compare_to(self.mark, args.get("by", "lineno"))
        n = args.get("n", 1)
        return {
            "total": sum(s.size_diff for s in stats) / n,
            "top": [
                [round(s.size_diff / n), round(s.count_diff / n, 2), str(s.traceback)]
                for s in stats[: args.get("top", 30)]
            ],
        }


class GcPauses:
    """How long the cyclic garbage collector stopped the process, per generation."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    async def report(self, args: dict[str, Any]) -> dict[str, Any]:
        pauses, self.pauses = self.pauses, []
        out: dict[str, Any] = {"objects": len(gc.get_objects())}
        for gen in (0, 1, 2):
            times = [t for g, t in pauses if g == gen]
            out[f"gen{gen}"] = {
                "count": len(times),
                "max_ms": max(times) * 1000 if times else 0.0,
                "total_ms": sum(times) * 1000,
            }
        return out


TRACER = Tracer()
GC_PAUSES = GcPauses()
TRACE_COMMANDS = {
    "tm_mark": TRACER.take_mark,
    "tm_diff": TRACER.diff,
    "gc_pauses": GC_PAUSES.report,
}


def snapshot(version: int) -> Snapshot:
    return Snapshot(
        id=STORY_ID,
        feed=FEED_ID,
        url=f"https://gazette.example/live/{STORY_ID}",
        title="Live: storm closes the Saltmarsh Bridge",
        paragraphs=(f"Update {version}.",),
    )


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


# -- the baseline: websockets only -------------------------------------------------------------


async def run_bare(sock: socket.socket, out: Any, max_seconds: float, port: int) -> None:
    import websockets
    from websockets.asyncio.server import serve

    clients: set[Any] = set()
    subscribed = encode_subscribed(CHANNEL, 1, "bench", False)
    seq = 1

    async def handler(ws: Any) -> None:
        try:
            await ws.recv()  # the subscribe message
            await ws.send(subscribed)
            clients.add(ws)
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        finally:
            clients.discard(ws)

    async def publish(args: dict[str, Any]) -> dict[str, Any]:
        nonlocal seq
        count, rate, size = args["count"], args.get("rate"), args.get("size", 1000)
        started_wall, start = time.time(), time.perf_counter()
        for i in range(count):
            await pace(start, i, rate)
            seq += 1
            frame = encode_update(CHANNEL, seq, update_event(seq, time.time(), size))
            websockets.broadcast(clients, frame)
        return {"published": count, "started": started_wall, "seconds": time.perf_counter() - start}

    async def collect(args: dict[str, Any]) -> dict[str, Any]:
        gc.collect()
        return {"clients": len(clients)}

    async with serve(handler, sock=sock, compression=None, max_size=64 * 1024, backlog=4096):
        await command_loop(
            out,
            {"publish": publish, "gc": collect, **TRACE_COMMANDS},
            max_seconds=max_seconds,
            hello={"kind": "bare", "port": port, "channel": CHANNEL},
        )


# -- the ASGI floor: an empty Starlette endpoint on the same uvicorn configuration -------------


async def run_asgi(sock: socket.socket, out: Any, max_seconds: float, port: int) -> None:
    """What Starlette on uvicorn costs per connection before the hub adds anything (capacity)."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from liveupdates.hub.app import make_server
    from liveupdates.settings import load_settings

    subscribed = encode_subscribed(CHANNEL, 1, "bench", False)
    clients: set[WebSocket] = set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        clients.add(websocket)
        try:
            await websocket.receive_text()
            await websocket.send_text(subscribed)
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(websocket)

    class NoHub:
        async def shutdown(self) -> None:
            pass

    app = Starlette(routes=[WebSocketRoute("/v1/ws", endpoint)])
    app.state.hub = NoHub()
    settings = load_settings({})
    server = make_server(
        app, settings, host="127.0.0.1", port=port, log_level="warning", backlog=4096
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)

    async def collect(args: dict[str, Any]) -> dict[str, Any]:
        gc.collect()
        return {"clients": len(clients)}

    try:
        await command_loop(
            out,
            {"gc": collect, **TRACE_COMMANDS},
            max_seconds=max_seconds,
            hello={"kind": "asgi", "port": port, "channel": CHANNEL},
        )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(serving, 20)
        except (TimeoutError, Exception):
            serving.cancel()


# -- liveupdates: the real app ------------------------------------------------------------------


async def run_hub(
    sock: socket.socket, out: Any, max_seconds: float, port: int, *, native_ws: bool = False
) -> None:
    from liveupdates.backends import open_backends
    from liveupdates.events import channels_for
    from liveupdates.hub.app import make_server
    from liveupdates.server import build_app
    from liveupdates.settings import load_settings
    from liveupdates.store.base import VersionConflict

    tmp = tempfile.TemporaryDirectory(prefix="lu-bench-")
    # The repository's defaults (config/liveupdates.toml), ignoring the caller's environment,
    # except the per-address limits: every bench client comes from 127.0.0.1.
    settings = dataclasses.replace(
        load_settings({}),
        data_dir=tmp.name,
        hub_demo=False,
        limits_connections_per_address=10_000_000,
        limits_requests_per_second_per_address=1e9,
    )
    if os.environ.get("BENCH_REDIS_URL"):  # bench/redisbench.py: the Redis store and Streams bus
        settings = dataclasses.replace(
            settings,
            redis_url=os.environ["BENCH_REDIS_URL"],
            redis_prefix=os.environ.get("BENCH_REDIS_PREFIX", "lu-bench:"),
        )
    backends = open_backends(settings)
    store, bus = backends.store, backends.bus
    first = snapshot(1)
    with contextlib.suppress(VersionConflict):  # on Redis, the first process stored it already
        await store.append_version(
            first, "h1", 0, [update_event(1, time.time())], channels_for(first)
        )
    version = 1
    ws_sock, http_sock, http_port = None, sock, port
    if native_ws:
        # The clients' port is the websockets server's; uvicorn gets another one.
        ws_sock, http_sock = sock, bound_socket()
        http_port = http_sock.getsockname()[1]
    app = build_app(
        settings,
        backends,
        self_url=f"http://127.0.0.1:{http_port}",
        ws_sock=ws_sock,
    )
    server = make_server(
        app,
        settings,
        host="127.0.0.1",
        port=http_port,
        log_level="warning",
        backlog=4096,
        own_process=True,  # as `serve` and `web` run it (liveupdates/gcpolicy.py)
    )
    serving = asyncio.create_task(server.serve(sockets=[http_sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)

    async def publish_one(event: dict[str, Any]) -> None:
        nonlocal version
        snap = snapshot(version + 1)
        entries = await store.append_version(
            snap, f"h{version + 1}", version, [event], channels_for(snap)
        )
        version += 1
        await bus.publish(entries)

    async def publish(args: dict[str, Any]) -> dict[str, Any]:
        count, rate, size = args["count"], args.get("rate"), args.get("size", 1000)
        started_wall, start = time.time(), time.perf_counter()
        for i in range(count):
            await pace(start, i, rate)
            await publish_one(update_event(version + 1, time.time(), size))
        return {"published": count, "started": started_wall, "seconds": time.perf_counter() - start}

    async def collect(args: dict[str, Any]) -> dict[str, Any]:
        gc.collect()
        return {"clients": len(app.state.hub.connections)}

    from bench.e2e_server import E2E
    from bench.websub_server import WebSubBench

    e2e = E2E(store, bus)
    websub = WebSubBench(e2e, backends.websub, app, http_port)
    try:
        await command_loop(
            out,
            {
                "publish": publish,
                "gc": collect,
                "e2e_setup": e2e.setup,
                "e2e_poll": e2e.poll,
                "e2e_republish": e2e.republish,
                "websub_setup": websub.setup,
                "websub_push": websub.push,
                **TRACE_COMMANDS,
            },
            max_seconds=max_seconds,
            hello={
                "kind": "hubws" if native_ws else "hub",
                "port": port,
                "channel": story_channel(STORY_ID),
            },
        )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(serving, 20)
        except (TimeoutError, Exception):
            serving.cancel()
        await websub.close()
        await e2e.close()
        await backends.close()
        tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["hub", "hubws", "bare", "asgi"])
    parser.add_argument("--max-seconds", type=float, default=1800)
    args = parser.parse_args()
    out = reply_stream()
    sock = bound_socket()
    port = sock.getsockname()[1]
    if args.kind == "bare":
        asyncio.run(run_bare(sock, out, args.max_seconds, port))
    elif args.kind == "asgi":
        asyncio.run(run_asgi(sock, out, args.max_seconds, port))
    else:
        asyncio.run(run_hub(sock, out, args.max_seconds, port, native_ws=args.kind == "hubws"))


if __name__ == "__main__":
    main()
