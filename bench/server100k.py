"""One web process of the 100k run: `python -m bench.server100k --port P --redis-url U --prefix X`.

The production app (`server.build_app`, poller off) under `make_server` with the repository's
default settings (so /v1/ws through the default port's front door), on the Redis backends (Redis
store, Streams bus), listening on a socket bound with SO_REUSEPORT: several of these share one
port as `liveupdates web --reuse-port` processes would, the kernel spreading connections among
them, and the bus carries every update to all of them. Port 0: pick one (the first process).
Commands: `publish` (store + bus, as bench/server.py), `gc`, `clients`, `rss`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import socket
import time
from typing import Any

from bench.payload import STORY_ID, update_event
from bench.proc import command_loop, reply_stream
from bench.server import pace, snapshot


def reuse_port_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    return sock


async def amain(args: argparse.Namespace) -> None:
    from liveupdates.backends import open_backends
    from liveupdates.events import channels_for
    from liveupdates.hub.app import make_server
    from liveupdates.models import story_channel
    from liveupdates.server import build_app
    from liveupdates.settings import load_settings

    out = reply_stream()
    sock = reuse_port_socket(args.port)
    port = sock.getsockname()[1]
    settings = dataclasses.replace(
        load_settings({}),
        redis_url=args.redis_url,
        redis_prefix=args.prefix,
        hub_demo=False,
        limits_connections_per_address=10_000_000,
        limits_requests_per_second_per_address=1e9,
    )
    backends = open_backends(settings)
    store, bus = backends.store, backends.bus
    app = build_app(settings, backends, self_url=f"http://127.0.0.1:{port}")
    server = make_server(
        app, settings, host="127.0.0.1", port=port, log_level="warning", own_process=True
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    version = 0

    async def setup(a: dict[str, Any]) -> dict[str, Any]:
        nonlocal version
        latest = await store.latest(STORY_ID)
        if latest is None:
            first = snapshot(1)
            await store.append_version(
                first, "h1", 0, [update_event(1, time.time())], channels_for(first)
            )
            version = 1
        return {"version": version}

    async def publish(a: dict[str, Any]) -> dict[str, Any]:
        nonlocal version
        count, rate, size = a["count"], a.get("rate"), a.get("size", 1000)
        start = time.perf_counter()
        for i in range(count):
            await pace(start, i, rate)
            snap = snapshot(version + 1)
            event = update_event(version + 1, time.time(), size)
            entries = await store.append_version(
                snap, f"h{version + 1}", version, [event], channels_for(snap)
            )
            version += 1
            await bus.publish(entries)
        return {"published": count, "seconds": time.perf_counter() - start}

    async def collect(a: dict[str, Any]) -> dict[str, Any]:
        gc.collect()
        return {"clients": len(app.state.hub.connections)}

    try:
        await command_loop(
            out,
            {"setup": setup, "publish": publish, "gc": collect},
            max_seconds=args.max_seconds,
            hello={"port": port, "channel": story_channel(STORY_ID)},
        )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(serving, 60)
        except (TimeoutError, Exception):
            serving.cancel()
        await backends.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
