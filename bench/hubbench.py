"""The hub against the bare `websockets` server, by issue 13's rules (`--only hub`, `--only capacity100k`).

`hub`: at 1,000 and 10,000 clients (quick: 200), sessions alternate project, baseline, project,
... (3 of each by default), each a fresh server with fresh clients on the default port, read by
the lean receiver (bench/receiver.py; `websockets` clients with `receiver="websockets"`): RSS per
idle subscribed connection, then the fan-out burst and fixed-rate phases. Then the accept rate
(connections opened and subscribed per second) from storms against both servers up at once,
alternating in pairs (`storm_pairs`). Every ratio is computed per repetition (project over the
baseline measured next to it) and reported as the median with its min-max range; a target is
met only when the range's worst end meets it.

`capacity100k`: see bench/capacity100k.py.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from typing import Any

from bench import wsbench
from bench.proc import call_all
from bench.stats import ratio
from bench.wsbench import Phase


def plan(quick: bool) -> dict[int, list[Phase]]:
    if quick:
        return {200: [Phase("burst", 100, None, repeat=2), Phase("rate", 50, 25.0)]}
    return {
        1000: [Phase("burst", 200, None, repeat=3), Phase("rate", 100, 20.0)],
        10000: [Phase("burst", 50, None, repeat=2), Phase("rate", 20, 2.0)],
    }


def accept_rate(s: dict[str, Any]) -> float:
    added = s["connected"] - min(s["clients"], 20)
    return added / s["connect_seconds"] if s["connect_seconds"] > 0 else 0.0


def figures(s: dict[str, Any]) -> dict[str, float]:
    out = {
        "accept_per_s": accept_rate(s),
        "kib_per_conn": s["rss_idle_per_conn"] / 1024,
        "rss_after_mib": s["rss_after"] / 2**20,
    }
    for name, p in s["phases"].items():
        out[f"{name}_msgs_per_cpu_s"] = p["msgs_per_cpu_s"]
        out[f"{name}_p50_ms"] = p["p50_ms"]
        out[f"{name}_p99_ms"] = p["p99_ms"]
        out[f"{name}_wait_p99_ms"] = p["wait_p99_ms"]
        out[f"{name}_lost"] = p["expected"] - p["received"]
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def storm_pairs(n: int, pairs: int, receiver: str) -> list[dict[str, float]]:
    """Accept + subscribe rates of storms of `n` connections, both servers up at once, storms
    alternating baseline, project, project, baseline, ... (each closed before the next).

    Measured inside the fan-out sessions, a storm of 1,000 lasts 0.3-0.6 s, and from one session
    to the next both servers land near either ~1,800 or ~3,200 connections/s (the machine's state
    over tens of seconds), so a ratio of two sessions mostly showed which mode each fell in.
    Adjacent storms share that state; each pair gives one ratio."""
    rigs = {kind: wsbench.Rig(kind, n, 2, f"accept{n}") for kind in ("bare", "hub")}
    try:

        def storm(kind: str, count: int) -> float:
            rig = rigs[kind]
            call_all(rig.loaders, "receiver", kind=receiver)
            got = rig.connect(count)
            call_all(rig.loaders, "close", timeout=600)
            deadline = time.monotonic() + 60
            while rig.server.call("gc")["clients"] and time.monotonic() < deadline:
                time.sleep(0.1)  # the server has not seen every close yet: not in the next storm
            return float(got["connected"]) / got["seconds"]

        for kind in rigs:
            storm(kind, min(n, 20))  # first connections pay one-time costs (imports, caches)
        out = []
        for i in range(pairs):
            order = ("bare", "hub") if i % 2 == 0 else ("hub", "bare")
            out.append({kind: storm(kind, n) for kind in order})
        return out
    finally:
        for rig in rigs.values():
            rig.close()


def run(quick: bool, reps: int = 3, receiver: str = "kernel") -> dict[str, Any]:
    """`receiver`: how the clients read (bench/receiver.py): "kernel" by default, as the latency
    benchmarks do, so the two client processes' own queue on the shared cores is not counted as
    either server's latency."""
    out: dict[str, Any] = {"reps": reps, "receiver": receiver, "sizes": {}}
    for n, phases in plan(quick).items():
        runs: list[dict[str, dict[str, float]]] = []
        for rep in range(reps):
            pair: dict[str, dict[str, float]] = {}
            for kind in ("bare", "hub"):  # alternating: baseline, project, baseline, ...
                print(f"hub: {kind}, {n} clients, repetition {rep + 1}/{reps} ...", flush=True)
                session = wsbench.fanout_session(kind, n, phases, receiver=receiver)
                pair[kind] = figures(asdict(session))
            runs.append(pair)
        ratios: dict[str, list[float]] = {}
        for pair in runs:
            h, b = pair["hub"], pair["bare"]
            for key in h:
                if key.endswith("_lost"):
                    continue
                ratios.setdefault(key, []).append(ratio(h[key], b[key]))
        size: dict[str, Any] = {
            "runs": runs,
            "ratio": {key: spread(values) for key, values in ratios.items()},
            "hub": {k: spread([r["hub"][k] for r in runs]) for k in runs[0]["hub"]},
            "bare": {k: spread([r["bare"][k] for r in runs]) for k in runs[0]["bare"]},
        }
        # The accept rate from paired storms (storm_pairs says why); the sessions' own stay in
        # "runs" and under "session_accept_per_s".
        print(f"hub: accept storms of {n}, both servers up ...", flush=True)
        storms = storm_pairs(n, max(reps, 5 if n <= 1000 else 3), receiver)
        size["storms"] = storms
        for key in ("ratio", "hub", "bare"):
            size[key]["session_accept_per_s"] = size[key].pop("accept_per_s")
        size["ratio"]["accept_per_s"] = spread([ratio(p["hub"], p["bare"]) for p in storms])
        for kind in ("hub", "bare"):
            size[kind]["accept_per_s"] = spread([p[kind] for p in storms])
        out["sizes"][str(n)] = size
    return out


def _r(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _v(s: dict[str, float]) -> str:
    def f(x: float) -> str:
        return f"{x / 1000:.1f}k" if abs(x) >= 1000 else f"{x:.3g}"

    return f"{f(s['median'])} ({f(s['min'])}-{f(s['max'])})"


Row = tuple[str, str, str, str, str, str]


def _row(size: dict[str, Any], where: str, label: str, key: str, target: str, ok: Any) -> Row:
    h, b, r = size["hub"][key], size["bare"][key], size["ratio"][key]
    return (f"{label}, {where}", _v(h), _v(b), _r(r), target, "yes" if ok(h, r) else "NO")


def rows(results: dict[str, Any]) -> list[Row]:
    """(benchmark, liveupdates, baseline, ratio median (min-max), target, met) per figure."""
    table: list[Row] = []
    for n, size in results["sizes"].items():
        receipt = " (kernel receipt)" if results.get("receiver") == "kernel" else ""
        where = f"{n} clients, default port{receipt}, x{results['reps']} alternating"
        storms = f"storms of {n}, default port, x{len(size.get('storms', ()))} alternating pairs"
        table.append(
            _row(
                size,
                storms if "storms" in size else where,
                "accept + subscribe per s",
                "accept_per_s",
                ">= 0.8x",
                lambda h, r: r["min"] >= 0.8,
            )
        )
        table.append(
            _row(
                size,
                where,
                "RSS KiB per idle subscribed connection",
                "kib_per_conn",
                "<= 16 KiB",
                lambda h, r: h["max"] <= 16,
            )
        )
        for phase in ("burst", "rate"):
            if f"{phase}_msgs_per_cpu_s" not in size["ratio"]:
                continue
            table.append(
                _row(
                    size,
                    where,
                    f"fan-out {phase}: delivered msg/s per server core",
                    f"{phase}_msgs_per_cpu_s",
                    ">= 1.5x",
                    lambda h, r: r["min"] >= 1.5,
                )
            )
            table.append(
                _row(
                    size,
                    where,
                    f"fan-out {phase}: p99 ms",
                    f"{phase}_p99_ms",
                    "<= 1.0x",
                    lambda h, r: r["max"] <= 1.0,
                )
            )
            if phase == "burst" and "burst_wait_p99_ms" in size["ratio"]:
                table.append(
                    _row(
                        size,
                        where,
                        "fan-out burst: p99 ms from the burst's start",
                        "burst_wait_p99_ms",
                        "<= 1.0x",
                        lambda h, r: r["max"] <= 1.0,
                    )
                )
            lost = sum(run["hub"][f"{phase}_lost"] for run in size["runs"])
            if lost:
                table.append(
                    (f"fan-out {phase}: frames lost, {where}", str(lost), "", "", "0", "NO")
                )
    return table
