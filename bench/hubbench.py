"""The hub against the bare `websockets` server, by issue 13's rules (`--only hub`, `--only capacity100k`).

`hub`: at 1,000 and 10,000 clients (quick: 200), sessions alternate project, baseline, project,
... (3 of each by default), each a fresh server with fresh clients on the default port, read by
the lean receiver (bench/receiver.py; `websockets` clients with `receiver="websockets"`): accept rate
(connections opened and subscribed per second), RSS per idle subscribed connection, then the
fan-out burst and fixed-rate phases. Every ratio is computed per repetition (project over the
baseline measured just before it) and reported as the median with its min-max range; a target is
met only when the range's worst end meets it.

`capacity100k`: see bench/capacity100k.py.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from bench import wsbench
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
        out["sizes"][str(n)] = {
            "runs": runs,
            "ratio": {key: spread(values) for key, values in ratios.items()},
            "hub": {k: spread([r["hub"][k] for r in runs]) for k in runs[0]["hub"]},
            "bare": {k: spread([r["bare"][k] for r in runs]) for k in runs[0]["bare"]},
        }
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
        table.append(
            _row(
                size,
                where,
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
