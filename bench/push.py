"""Device push throughput: one story update followed by N Web Push devices, delivered to a local
push service, against pywebpush's own `webpush()` loop as the baseline, in the same run.

    python -m bench.push                       # 10,000 and 100,000 devices; baseline 2,000 sends
    python -m bench.push --devices 2000 --baseline 500     # quick

Three processes, all on 127.0.0.1 (see bench/README.md, "Device push"):
- a push service (`receive`): a minimal HTTP/1.1 keep-alive server that answers 201 to every POST
  and counts them; it does not decrypt (the strict server in tests/support does), so it costs both
  sides the same little CPU;
- the baseline (`baseline`): `pywebpush.webpush()` called once per device in a loop, each call
  encrypting (RFC 8291) and signing (VAPID) as the library does;
- liveupdates (`project`): the real dispatcher (`run_dispatcher`, as `liveupdates push` runs it) on
  a SQLite store holding N registered devices that follow one story; the story gains a paragraph
  (the real store write and event) and the clock runs until the service has counted N sends and
  the store has recorded them (one waiting request to the service, no polling of it).

"Per core" is sends / CPU seconds of the sending side (user + system): the baseline's process; for
liveupdates every push process (the SQLite thread included) and, with --redis, the Redis server's
own CPU. So the figures do not depend on how the two cores are shared with the push service.

    python -m bench.push --devices 100000 --redis redis://127.0.0.1:6379/0 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from liveupdates.gcpolicy import settle_after_startup

TARGET_RATIO = 3.0
TARGET_SECONDS_100K = 60.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def browser_keys() -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the push service ----------------------------------------------------------------------------


class _Receiver(asyncio.Protocol):
    count = 0
    # GET /wait/N requests not answered yet: (N, their connection), answered once N are counted.
    waiting: list[tuple[int, asyncio.Transport]] = []

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            if head.startswith("GET /count"):
                _answer_count(self.transport)
            elif head.startswith("GET /wait/"):
                _Receiver.waiting.append((int(head.split()[1][len("/wait/") :]), self.transport))
                _answer_waiting()
            else:
                _Receiver.count += 1
                self.transport.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                if _Receiver.waiting:
                    _answer_waiting()


def _answer_count(transport: asyncio.Transport) -> None:
    body = str(_Receiver.count).encode()
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def _answer_waiting() -> None:
    still = []
    for target, transport in _Receiver.waiting:
        if _Receiver.count >= target:
            _answer_count(transport)
        else:
            still.append((target, transport))
    _Receiver.waiting = still


async def receive(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def received_async(port: int, at_least: int | None = None) -> int:
    """How many sends the service has counted; with `at_least`, answered once it has counted
    that many (one request for the whole wait: polling the count would add a connection every
    few milliseconds to the measured process's CPU, which the baseline does not pay)."""
    # A bare request on a fresh connection: an HTTP client here would add its own cost to the
    # dispatcher's process, which is what is measured.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    path = "/count" if at_least is None else f"/wait/{at_least}"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    writer.close()
    return int(body)


# -- the baseline: pywebpush's webpush() loop ------------------------------------------------------


def baseline(port: int, n: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from py_vapid import Vapid
    from pywebpush import webpush

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    vapid = Vapid.from_pem(pem)
    keys = browser_keys()  # one key pair for every device: encryption still runs per send
    payload = json.dumps(_payload()).encode()
    # The garbage collector set as in liveupdates' push process: both sides run under the same
    # collector settings, so the ratio compares the senders, not the settings.
    settle_after_startup()
    start_cpu, start = cpu_seconds(), time.perf_counter()
    for i in range(n):
        webpush(
            {"endpoint": f"http://127.0.0.1:{port}/push/{i}", "keys": keys},
            payload,
            vapid_private_key=vapid,
            vapid_claims={"sub": "mailto:bench@example.org"},
            ttl=86400,
            headers={"Urgency": "normal", "Topic": "bench-story"},
        )
    return {
        "sent": n,
        "cpu": cpu_seconds() - start_cpu,
        "wall": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
    }


def _payload() -> dict[str, Any]:
    return {
        "type": "notification",
        "channel": "story:bench-story",
        "seq": 2,
        "epoch": "bench",
        "kind": "updated",
        "story": {"id": "bench-story", "title": "Ferry timetable changes", "url": "https://x/"},
        "title": "Ferry timetable changes",
        "body": "1 new paragraph: the evening crossing moves to 19:40.",
        "updates": 1,
    }


# -- liveupdates: the real dispatcher ------------------------------------------------------------


def bench_settings(port: int, redis_url: str | None, prefix: str) -> Any:
    from liveupdates.settings import Settings

    return replace(
        Settings(),
        data_dir=Path(tempfile.mkdtemp(prefix="pushbench-")),
        hub_demo=False,
        push_webpush_hosts=(f"127.0.0.1:{port}",),
        push_min_gap=0.0,
        push_scan_interval=0.05,
        redis_url=redis_url,
        redis_prefix=prefix,
    )


async def project(
    port: int, n: int, redis_url: str | None = None, processes: int = 1
) -> dict[str, Any]:
    from liveupdates.backends import open_backends
    from liveupdates.events import channels_for, created_event, updated_event
    from liveupdates.models import Snapshot
    from liveupdates.push.service import run_dispatcher

    prefix = f"pushbench-{os.getpid()}:"
    settings = bench_settings(port, redis_url, prefix)
    backends = open_backends(settings)
    devices, store = backends.devices, backends.store
    first = Snapshot(
        id="bench-story",
        feed="bench",
        url="https://bench.example/ferry",
        title="Ferry timetable changes",
        paragraphs=("The evening crossing moves.",),
    )
    helpers: list[subprocess.Popen[str]] = []
    try:
        await store.append_version(first, "h1", 0, [created_event(first)], channels_for(first))
        keys = browser_keys()
        setup = time.perf_counter()
        if redis_url:
            await register_followers_api(devices, port, n, keys)
        else:
            await register_followers(devices, port, n, keys)
        setup = time.perf_counter() - setup
        async with run_dispatcher(settings, backends) as dispatcher:
            assert dispatcher is not None
            await dispatcher.scan_once()  # the channel's cursor is at the log's end: nothing old
            settle_after_startup()  # as `liveupdates push` does once dispatching
            # More push processes on the same Redis, as `liveupdates push` runs them.
            for _ in range(processes - 1):
                helpers.append(_start_helper(port, redis_url or "", prefix))
            for helper in helpers:
                assert helper.stdout is not None
                line = await asyncio.to_thread(helper.stdout.readline)
                assert line.strip() == "ready", line
            second = replace(first, paragraphs=(*first.paragraphs, "It leaves at 19:40 from May."))
            already = await received_async(port)  # the service counts every run's sends
            sent_before = await sent_count(devices)
            store_cpu = await redis_cpu(redis_url)
            start_cpu, start = cpu_seconds(), time.perf_counter()
            await store.append_version(
                second, "h2", 1, [updated_event(first, second, 1)], channels_for(second)
            )
            await received_async(port, already + n)
            # Recording the sends (states, counters) is part of the work, as the baseline's
            # reading of each answer is: the clock stops once the store holds every send.
            deadline = time.monotonic() + 60
            while await sent_count(devices) < sent_before + n:
                if time.monotonic() > deadline:
                    raise SystemExit("the sends reached the service but were not all recorded")
                await asyncio.sleep(0.005)
            wall = time.perf_counter() - start
            cpu = cpu_seconds() - start_cpu
            store_cpu = await redis_cpu(redis_url) - store_cpu
        helper_cpu = [_stop_helper(helper) for helper in helpers]
    finally:
        for helper in helpers:
            helper.kill()
        if redis_url:
            await forget_prefix(redis_url, prefix)
        await backends.close()
    return {
        "sent": n,
        # Every push process's CPU, and Redis's (the SQLite thread is in this process's).
        "cpu": cpu + sum(helper_cpu) + store_cpu,
        "store_cpu": store_cpu,
        "wall": wall,
        "setup": setup,
        "peak_rss_mib": peak_rss_mib(),
    }


async def sent_count(devices: Any) -> int:
    """Web Push sends recorded in the store by every push process."""
    counters: dict[str, dict[str, int]] = await devices.counters()
    return counters.get("webpush", {}).get("sent", 0)


def _start_helper(port: int, redis_url: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.push", "dispatch", str(port), redis_url, prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _stop_helper(helper: subprocess.Popen[str]) -> float:
    out, _ = helper.communicate(input="", timeout=60)  # closing its stdin ends it
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result["cpu"]


async def dispatch(port: int, redis_url: str, prefix: str) -> dict[str, float]:
    """One more push process on the bench's Redis: dispatches until its stdin closes; its CPU
    from when it was ready."""
    from liveupdates.backends import open_backends
    from liveupdates.push.service import run_dispatcher

    settings = bench_settings(port, redis_url, prefix)
    backends = open_backends(settings)
    try:
        async with run_dispatcher(settings, backends) as dispatcher:
            assert dispatcher is not None
            await dispatcher.scan_once()
            settle_after_startup()
            start_cpu = cpu_seconds()
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)
            return {"cpu": cpu_seconds() - start_cpu}
    finally:
        await backends.close()


async def redis_cpu(redis_url: str | None) -> float:
    """CPU seconds the Redis server has used (0 without Redis). A Redis shared with other work
    counts that work too: the figure can only be too high."""
    if not redis_url:
        return 0.0
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def forget_prefix(redis_url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


async def register_followers_api(devices: Any, port: int, n: int, keys: dict[str, str]) -> None:
    """N Web Push devices following the story through the store's own calls (Redis), many at
    a time. Not measured."""
    from liveupdates.models import Device

    async def one(i: int) -> None:
        device = Device(
            id=f"d{i:07d}",
            platform="webpush",
            address=f"http://127.0.0.1:{port}/push/d{i:07d}",
            keys=keys,
        )
        device_id = await devices.register(device, "not-a-secret", time.time())
        await devices.subscribe(device_id, "story:bench-story", "all", 200)

    # 50 at a time: the Redis client's pool holds 100 connections.
    for start in range(0, n, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))


async def register_followers(devices: Any, port: int, n: int, keys: dict[str, str]) -> None:
    """N Web Push devices following the story, written in large transactions: the same rows
    `register` and `subscribe` write (one transaction each would make a 100,000-device setup
    take minutes on a busy machine). Not measured."""
    await devices.platform_counts()  # the device tables exist
    now, keys_text = time.time(), json.dumps(keys, sort_keys=True)
    for start in range(0, n, 5000):
        ids = [f"d{i:07d}" for i in range(start, min(n, start + 5000))]
        rows = [
            (device_id, "webpush", f"http://127.0.0.1:{port}/push/{device_id}", keys_text, None)
            for device_id in ids
        ]

        def write(c: Any, rows: list[tuple[Any, ...]] = rows, ids: list[str] = ids) -> None:
            c.executemany(
                "INSERT INTO push_devices (id, platform, address, keys, environment, secret,"
                f" seen) VALUES (?, ?, ?, ?, ?, 'not-a-secret', {now!r})",
                rows,
            )
            c.executemany(
                "INSERT INTO push_subs (channel, device_id, notify) VALUES"
                " ('story:bench-story', ?, 'all')",
                [(device_id,) for device_id in ids],
            )

        await devices.store._run_write(write)


# -- the orchestrator ---------------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.push", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"bench.push {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    sizes: list[int], baseline_n: int, repeats: int, redis_url: str, processes: int
) -> list[dict[str, Any]]:
    port = _free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "bench.push", "receive", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stdout is not None and service.stdout.readline().strip() == "ready"
        rows = []
        for n in sizes:
            ours, theirs = [], []
            for _ in range(repeats):  # alternating: project, baseline, project, ...
                ours.append(_child("project", str(port), str(n), redis_url, str(processes)))
                theirs.append(_child("baseline", str(port), str(baseline_n)))
            ratios = sorted(
                (o["sent"] / o["cpu"]) / (t["sent"] / t["cpu"])
                for o, t in zip(ours, theirs, strict=True)
            )
            rows.append(
                {
                    "devices": n,
                    "setup": f"{processes} push process{'es' if processes > 1 else ''}, "
                    + ("Redis" if redis_url else "SQLite"),
                    "per_core": sorted(o["sent"] / o["cpu"] for o in ours),
                    "baseline_per_core": sorted(t["sent"] / t["cpu"] for t in theirs),
                    "ratio": ratios,
                    "wall": sorted(o["wall"] for o in ours),
                    "peak_rss_mib": max(o["peak_rss_mib"] for o in ours),
                    "baseline_peak_rss_mib": max(t["peak_rss_mib"] for t in theirs),
                }
            )
        return rows
    finally:
        service.terminate()
        service.wait(timeout=10)


def table(rows: list[dict[str, Any]]) -> str:
    def mid(values: list[float]) -> float:
        return values[len(values) // 2]

    lines = [
        f"Device push, Web Push to a local service, {os.cpu_count()} cores "
        "(median of alternating repetitions, [min-max])",
        "",
        "| devices | liveupdates | sends/s per core | pywebpush loop per core | ratio | "
        "wall time | peak RSS | target |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio, wall = row["ratio"], row["wall"]
        target = f">= {TARGET_RATIO:.0f}x" + (
            f", <= {TARGET_SECONDS_100K:.0f} s" if row["devices"] >= 100_000 else ""
        )
        met = ratio[0] >= TARGET_RATIO and (
            row["devices"] < 100_000 or wall[-1] <= TARGET_SECONDS_100K
        )
        lines.append(
            f"| {row['devices']:,} | {row['setup']} | {mid(row['per_core']):,.0f} | "
            f"{mid(row['baseline_per_core']):,.0f} | {mid(ratio):.2f}x "
            f"[{ratio[0]:.2f}-{ratio[-1]:.2f}] | {mid(wall):.1f} s [{wall[0]:.1f}-{wall[-1]:.1f}] | "
            f"{row['peak_rss_mib']:.0f} MiB (baseline {row['baseline_peak_rss_mib']:.0f}) | "
            f"{target}: {'met' if met else 'missed'} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("receive", "baseline", "project", "dispatch"):
        role, port = sys.argv[1], int(sys.argv[2])
        if role == "receive":
            asyncio.run(receive(port))
        elif role == "baseline":
            print(json.dumps(baseline(port, int(sys.argv[3]))))
        elif role == "dispatch":
            print(json.dumps(asyncio.run(dispatch(port, sys.argv[3], sys.argv[4]))))
        else:
            n, redis_url, processes = int(sys.argv[3]), sys.argv[4] or None, int(sys.argv[5])
            print(json.dumps(asyncio.run(project(port, n, redis_url, processes))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--baseline", type=int, default=2000, help="sends in the baseline loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="push processes sharing the work (more than 1 needs --redis)",
    )
    parser.add_argument(
        "--redis",
        default="",
        help="store on this Redis (a key prefix of its own) instead of SQLite",
    )
    args = parser.parse_args()
    if args.processes > 1 and not args.redis:
        parser.error("--processes above 1 needs --redis (push processes share work on Redis)")
    sizes = [int(s) for s in args.devices.split(",")]
    print(table(run(sizes, args.baseline, args.repeats, args.redis, args.processes)))


if __name__ == "__main__":
    main()
