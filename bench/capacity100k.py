"""`--only capacity100k`: 100,000 subscribed WebSocket readers on the default port of one machine.

Every process of this machine type may open at most 20,000 files, so no process can hold 100k
sockets, on either side:

- **Servers.** Six web processes (`bench/server100k.py`: the production app, default settings, so
  /v1/ws through the front door) on the Redis backends, sharing one port with SO_REUSEPORT; the
  kernel spreads new connections over them, the Streams bus carries every update to all of them.
  Each ends up with ~16,700 connections.
- **Clients.** One `bench.client` process per <= 19,000 connections (six), each from three
  loopback source addresses of its own (127.0.0.2, 127.0.0.3, ...), taken in turn: one source
  address reaches one server port from the ~28,000 ephemeral ports of `ip_local_port_range`
  only, and the kernel's search for a free one grows slow past ~14,000 (bench/client.py).

Before that, one web process alone holds 19,000 connections (one client process, 127.0.0.2-4):
the single-process figure of issue 13.

Reported per configuration: connections opened and subscribed per second (all at once, as after a
deploy), RSS per idle connection summed over the server processes, a burst of 20 updates to all
(delivered frames per server core, CPU summed over the server processes; p50/p99 latency), and
RSS once the clients left (returned to the baseline or not). Quick: 2,000 over two processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any

import psutil

from bench.proc import Child, call_all
from bench.wsbench import cpu_seconds, pooled

REDIS_URL = os.environ.get("LIVEUPDATES_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PER_CLIENT = 19_000
# Source addresses per client process (<= 8,000 connections each; bench/client.py says why).
PER_ADDRESS_SET = 3
BURST = 20


def _rss(servers: list[Child], procs: list[psutil.Process]) -> tuple[int, list[int]]:
    counts = [s.call("gc")["clients"] for s in servers]
    time.sleep(0.5)
    for s in servers:
        s.call("gc")
    return sum(p.memory_info().rss for p in procs), counts


def session(n: int, n_servers: int, tag: str) -> dict[str, Any]:
    prefix = f"lubench100k:{os.getpid()}:{tag}:"
    servers: list[Child] = []
    clients: list[Child] = []
    try:
        servers.append(Child(f"{tag}-server0", "bench.server100k", "--prefix", prefix))
        port = servers[0].hello["port"]
        for i in range(1, n_servers):
            servers.append(
                Child(
                    f"{tag}-server{i}", "bench.server100k", "--port", str(port), "--prefix", prefix
                )
            )
        servers[0].call("setup")
        procs = [psutil.Process(s.pid) for s in servers]
        n_clients = max(1, math.ceil(n / PER_CLIENT))
        clients = [Child(f"{tag}-client{i}", "bench.client") for i in range(n_clients)]
        url = f"ws://127.0.0.1:{port}/v1/ws"
        channel = servers[0].hello["channel"]
        rss_before, _ = _rss(servers, procs)
        shares = [n // n_clients + (i < n % n_clients) for i in range(n_clients)]
        started = time.perf_counter()
        for i, (client, share) in enumerate(zip(clients, shares, strict=True)):
            client.send(
                "connect",
                url=url,
                channel=channel,
                n=share,
                sources=[f"127.0.0.{2 + i * PER_ADDRESS_SET + k}" for k in range(PER_ADDRESS_SET)],
                concurrency=100,
            )
        answers = [c.result(timeout=1800) for c in clients]
        connect_seconds = time.perf_counter() - started
        connected = sum(a["connected"] for a in answers)
        failed: dict[str, int] = {}
        for a in answers:
            for name, count in a["failed"].items():
                failed[name] = failed.get(name, 0) + count
        time.sleep(2.0)
        rss_after, per_server = _rss(servers, procs)
        time.sleep(1.0)
        call_all(clients, "arm", per_conn=BURST)
        cpu0 = sum(cpu_seconds(p) for p in procs)
        t0 = time.time()
        servers[0].call("publish", timeout=600, count=BURST, rate=None)
        waited = call_all(clients, "wait", timeout=600, timeout_s=300)
        cpu = sum(cpu_seconds(p) for p in procs) - cpu0
        last = max((a["last"] for a in waited if a["last"]), default=t0)
        burst = pooled([(waited, max(1e-9, last - t0), cpu)])
        burst.pop("closed", None)
        call_all(clients, "close", timeout=900)
        time.sleep(3.0)
        rss_gone, left = _rss(servers, procs)
        return {
            "clients": n,
            "servers": n_servers,
            "client_processes": n_clients,
            "connected": connected,
            "failed": failed,
            "per_server": per_server,
            "left_after_close": left,
            "connect_seconds": connect_seconds,
            "accept_per_s": connected / connect_seconds,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "rss_gone": rss_gone,
            "kib_per_conn": (rss_after - rss_before) / max(1, connected) / 1024,
            "burst": burst,
        }
    finally:
        for child in clients + servers:
            with contextlib.suppress(Exception):
                child.close()
        _cleanup(prefix)


def _cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    single, many = (1000, 2000) if quick else (19_000, 100_000)
    print(f"capacity100k: one web process, {single} connections ...", flush=True)
    out["single"] = session(single, 1, "c19k")
    print(f"capacity100k: {2 if quick else 6} web processes, {many} connections ...", flush=True)
    out["many"] = session(many, 2 if quick else 6, "c100k")
    return out


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    table: list[tuple[str, str, str, str, str, str]] = []
    for key in ("single", "many"):
        r = results.get(key)
        if not r:
            continue
        where = (
            f"{r['connected']} connections, {r['servers']} web process(es) on one port,"
            f" {r['client_processes']} client process(es)"
        )
        back = (r["rss_gone"] - r["rss_before"]) / 2**20
        table.append(
            (
                f"RSS per idle subscribed connection (summed over servers), {where}",
                f"{r['kib_per_conn']:.1f} KiB",
                "",
                "",
                "<= 16 KiB",
                "yes" if r["kib_per_conn"] <= 16 and not r["failed"] else "NO",
            )
        )
        table.append(
            (
                f"accept + subscribe per s, all at once, {where}",
                f"{r['accept_per_s']:.0f}/s ({r['connect_seconds']:.0f} s)",
                "",
                "",
                "100k within 60 s" if key == "many" else "",
                ("yes" if r["connect_seconds"] <= 60 else "NO") if key == "many" else "",
            )
        )
        b = r["burst"]
        lost = b["expected"] - b["received"]
        table.append(
            (
                f"burst of {BURST} to all, {where}: delivered msg/s per server core, p50 / p99 ms",
                f"{b['msgs_per_cpu_s'] / 1000:.1f}k, {b['p50_ms']:.0f} / {b['p99_ms']:.0f}"
                + (f" ({lost} lost)" if lost else ""),
                "",
                "",
                "",
                "",
            )
        )
        table.append(
            (
                f"server RSS before / with clients / after they left, {where}",
                f"{r['rss_before'] / 2**20:.0f} / {r['rss_after'] / 2**20:.0f}"
                f" / {r['rss_gone'] / 2**20:.0f} MiB (+{back:.0f} MiB kept)",
                "",
                "",
                "",
                "",
            )
        )
    return table
