"""Run every benchmark, print one table, write the figures to bench/results/<timestamp>.json.

    .venv/bin/python -m bench.run            # the full suite (several minutes)
    .venv/bin/python -m bench.run --quick    # every benchmark at a small size (< 2 minutes)
    .venv/bin/python -m bench.run --only fanout,diff

Every liveupdates figure is measured next to its baseline in the same run; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import diffbench, hubbench, polling, websub, wsbench
from bench.proc import ROOT
from bench.stats import ratio
from bench.wsbench import Phase

RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ("fanout", "capacity", "e2e", "diff", "polling", "websub")
# Not in the default run: `--only hub` (issue 13's repeated hub runs), `--only capacity100k`,
# `--only pushpin` (SSE against Pushpin, which it installs with apt-get when missing).
EXTRA = ("hub", "capacity100k", "pushpin")
# How each hub server kind serves /v1/ws, as the table names it ("hub": the main port, where the
# front door hands /v1/ws to the websockets library; "hubws": the optional second port).
TRANSPORTS = {"hub": " (default port)", "hubws": " (hub_ws_port)"}


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "fanout": {200: [Phase("burst", 100, None, repeat=2), Phase("rate", 50, 25.0)]},
            "capacity": 1000,
            "e2e": {"n": 100, "changes": 15, "interval": 0.2},
            "polling": {"n": 200, "rounds": 2},
            "websub": {"n": 100, "changes": 15, "interval": 0.2},
        }
    return {
        # Fixed rates give ~20k messages/s: well under capacity, so latency is not queueing.
        "fanout": {
            1000: [Phase("burst", 200, None, repeat=3), Phase("rate", 100, 20.0)],
            10000: [Phase("burst", 50, None, repeat=2), Phase("rate", 20, 2.0)],
        },
        "capacity": 10000,
        "e2e": {"n": 1000, "changes": 40, "interval": 0.25},
        "polling": {"n": 1000, "rounds": 6},
        "websub": {"n": 1000, "changes": 40, "interval": 0.25},
    }


def run(selected: list[str], quick: bool) -> dict[str, Any]:
    plan = sizes(quick)
    out: dict[str, Any] = {
        "quick": quick,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    sessions: dict[str, dict[str, Any]] = {}
    capacity_n = plan["capacity"]
    if "fanout" in selected:
        for n, phases in plan["fanout"].items():
            for kind in ("bare", "hub", "hubws"):
                print(f"fan-out: {kind}, {n} clients ...", flush=True)
                sessions[f"{kind}-{n}"] = asdict(wsbench.fanout_session(kind, n, phases))
        out["fanout"] = sessions
    if "capacity" in selected:
        cap: dict[str, Any] = {}
        for kind in ("bare", "hub", "hubws", "asgi"):
            key = f"{kind}-{capacity_n}"
            if key not in sessions:  # not measured with the fan-out: an idle-only session
                print(f"capacity: {kind}, {capacity_n} idle connections ...", flush=True)
                sessions[key] = asdict(wsbench.fanout_session(kind, capacity_n, []))
            s = sessions[key]
            cap[kind] = {
                "connections": s["connected"],
                "rss_before": s["rss_before"],
                "rss_after": s["rss_after"],
                "kib_per_conn": s["rss_idle_per_conn"] / 1024,
            }
        out["capacity"] = cap
    if "e2e" in selected:
        print(f"end to end: {plan['e2e']['n']} clients ...", flush=True)
        out["e2e"] = wsbench.e2e_session(**plan["e2e"])
    if "diff" in selected:
        print("diff ...", flush=True)
        out["diff"] = diffbench.run(quick)
    if "polling" in selected:
        print(f"polling: {plan['polling']['n']} feeds ...", flush=True)
        out["polling"] = polling.run(**plan["polling"])
    if "websub" in selected:
        print(f"websub: {plan['websub']['n']} clients ...", flush=True)
        out["websub"] = websub.websub_session(**plan["websub"])
    if "hub" in selected:
        out["hub"] = hubbench.run(quick)
    if "capacity100k" in selected:
        from bench import capacity100k

        out["capacity100k"] = capacity100k.run(quick)
    if "pushpin" in selected:
        from bench import pushpin

        out["pushpin"] = pushpin.run(quick)
    return out


# -- the table -----------------------------------------------------------------------------------


def _fmt(value: float, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        text = f"{value / 1000:.1f}k"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text}{unit}"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(benchmark, liveupdates, baseline, ratio, target, met)."""
    table: list[tuple[str, str, str, str, str, str]] = []
    fan = results.get("fanout", {})
    sizes_seen = sorted({int(k.split("-")[1]) for k in fan})
    for n, kind in [(n, kind) for n in sizes_seen for kind in ("hub", "hubws")]:
        hub, bare = fan.get(f"{kind}-{n}"), fan.get(f"bare-{n}")
        if not hub or not bare:
            continue
        transport = TRANSPORTS[kind]
        for name in hub["phases"]:
            h, b = hub["phases"][name], bare["phases"][name]
            what = "burst" if h["rate"] is None else f"{h['rate']:g} updates/s"
            runs = f" (x{h['runs']})" if h.get("runs", 1) > 1 else ""
            label = f"fan-out {n} clients{transport}, {h['count']}{runs} x 1 KB, {what}"
            r = ratio(h["msgs_per_cpu_s"], b["msgs_per_cpu_s"])
            lost = h["expected"] - h["received"]
            note = f" ({lost} lost)" if lost else ""
            table.append(
                (
                    f"{label}: delivered msg/s per server core",
                    _fmt(h["msgs_per_cpu_s"]) + note,
                    _fmt(b["msgs_per_cpu_s"]),
                    f"{r:.2f}",
                    ">= 0.80",
                    "yes" if r >= 0.8 else "NO",
                )
            )
            table.append(
                (
                    f"{label}: delivered msg/s (wall)",
                    _fmt(h["msgs_per_s"]),
                    _fmt(b["msgs_per_s"]),
                    f"{ratio(h['msgs_per_s'], b['msgs_per_s']):.2f}",
                    "",
                    "",
                )
            )
            r99 = ratio(h["p99_ms"], b["p99_ms"])
            table.append(
                (
                    f"{label}: latency p50 / p99 ms",
                    f"{_fmt(h['p50_ms'])} / {_fmt(h['p99_ms'])}",
                    f"{_fmt(b['p50_ms'])} / {_fmt(b['p99_ms'])}",
                    f"{r99:.2f} (p99)",
                    "p99 <= 1.5x",
                    "yes" if r99 <= 1.5 else "NO",
                )
            )
            if h["rate"] is None and "wait_p99_ms" in h:  # bench/wsbench.pooled says why
                wait99 = ratio(h["wait_p99_ms"], b["wait_p99_ms"])
                table.append(
                    (
                        f"{label}: from the burst's start p50 / p99 ms",
                        f"{_fmt(h['wait_p50_ms'])} / {_fmt(h['wait_p99_ms'])}",
                        f"{_fmt(b['wait_p50_ms'])} / {_fmt(b['wait_p99_ms'])}",
                        f"{wait99:.2f} (p99)",
                        "p99 <= 1.0x",
                        "yes" if wait99 <= 1.0 else "NO",
                    )
                )
    cap = results.get("capacity")
    if cap:
        b = cap["bare"]
        floor = cap.get("asgi")
        for kind in ("hubws", "hub"):
            h = cap.get(kind)
            if not h:
                continue
            table.append(
                (
                    f"capacity{TRANSPORTS[kind]}: RSS per idle subscribed connection"
                    f" ({h['connections']} open)",
                    _fmt(h["kib_per_conn"], " KiB"),
                    _fmt(b["kib_per_conn"], " KiB"),
                    f"{ratio(h['kib_per_conn'], b['kib_per_conn']):.2f}",
                    "<= 20 KiB, >= 10k conns",
                    "yes"
                    if h["kib_per_conn"] <= 20 and h["connections"] >= 10000
                    else ("yes (size)" if h["kib_per_conn"] <= 20 else "NO"),
                )
            )
        if floor:
            table.append(
                (
                    "capacity: same, empty Starlette endpoint on the same uvicorn (the ASGI floor)",
                    _fmt(floor["kib_per_conn"], " KiB"),
                    _fmt(b["kib_per_conn"], " KiB"),
                    f"{ratio(floor['kib_per_conn'], b['kib_per_conn']):.2f}",
                    "",
                    "",
                )
            )
    e2e = results.get("e2e")
    if e2e:
        p, a = e2e["pipeline"], e2e["hub_alone"]
        r99 = ratio(p["p99_ms"], a["p99_ms"])
        table.append(
            (
                f"end to end, {e2e['clients']} clients: fetch end -> receipt"
                f"{' (kernel)' if e2e.get('receiver') == 'kernel' else ''} p50 / p99 ms",
                f"{_fmt(p['p50_ms'])} / {_fmt(p['p99_ms'])}",
                f"{_fmt(a['p50_ms'])} / {_fmt(a['p99_ms'])}",
                f"{r99:.2f} (p99)",
                "p99 <= 50 ms",
                "yes" if p["p99_ms"] <= 50 else "NO",
            )
        )
        if "fetch_end_to_publish_ms_p50" in e2e:
            table.append(
                (
                    "end to end: of which fetch end -> bus.publish (parse, normalise, store, diff)"
                    " p50 / p99 ms",
                    f"{_fmt(e2e['fetch_end_to_publish_ms_p50'])}"
                    f" / {_fmt(e2e['fetch_end_to_publish_ms_p99'])}",
                    "",
                    "",
                    "",
                    "",
                )
            )
    push = results.get("websub")
    if push:
        table += _websub_rows(push)
    diff = results.get("diff")
    if diff:
        for name, label, target in (
            ("live_blog_2000", "diff: 2,000-paragraph live blog (+1 para, 1 word, -1 para) ms", 20),
            ("rewrite_1mb", "diff: 1 MB story rewritten ms", None),
        ):
            d = diff[name]
            table.append(
                (
                    label,
                    _fmt(d["engine_ms_p50"]),
                    _fmt(d["difflib_ms_p50"]),
                    f"{ratio(d['engine_ms_p50'], d['difflib_ms_p50']):.2f}",
                    f"<= {target} ms" if target else "",
                    ("yes" if d["engine_ms_p50"] <= target else "NO") if target else "",
                )
            )
    poll = results.get("polling")
    if poll:
        i, h = poll["ingest"], poll["httpx"]
        fresh = round(100 - 100 * poll.get("changed", 0.1))
        label = f"polling: {poll['feeds']} feeds, {fresh}% 304, concurrency {poll['concurrency']}"
        # Issue 13: >= 0.9x the polls/s and <= 1.2x the CPU per poll of bare httpx, judged at the
        # worst end of the per-round ratios.
        for key, name, target, worst in (
            ("polls_per_s", "polls/s", ">= 0.9x", poll["ratio"]["polls_per_s"]["min"] >= 0.9),
            (
                "cpu_us_per_poll",
                "worker CPU µs per poll",
                "<= 1.2x",
                poll["ratio"]["cpu_us_per_poll"]["max"] <= 1.2,
            ),
        ):
            r = poll["ratio"][key]
            table.append(
                (
                    f"{label}: {name} (median of {poll['rounds']} rounds)",
                    _fmt(i[key]),
                    _fmt(h[key]),
                    f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})",
                    target,
                    "yes" if worst else "NO",
                )
            )
    if results.get("hub"):
        table.extend(hubbench.rows(results["hub"]))
    if results.get("capacity100k"):
        from bench import capacity100k

        table.extend(capacity100k.rows(results["capacity100k"]))
    if results.get("pushpin"):
        from bench import pushpin

        table.extend(pushpin.rows(results["pushpin"]))
    return table


def markdown(results: dict[str, Any]) -> str:
    head = ("benchmark", "liveupdates", "baseline", "ratio", "target", "met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines)


def _websub_rows(push: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """Medians (min-max) of the repetitions: push and poll end against the hub alone."""

    def span(phase: dict[str, Any]) -> str:
        lo, hi = phase["p99_range"]
        return f"{_fmt(phase['p50_ms'])} / {_fmt(phase['p99_ms'])} ({_fmt(lo)}-{_fmt(hi)})"

    rows = []
    alone = push["alone"]
    head = f"websub, {push['clients']} clients, {push['repeat']} reps ({push['receiver']} receipt)"
    for key, label in (("push", "hub POST"), ("poll", "poll fetch end")):
        phase = push[key]
        lost = phase["expected"] - phase["received"]
        rows.append(
            (
                f"{head}: {label} -> receipt p50 / p99 (p99 range) ms; baseline: hub alone",
                span(phase) + (f" ({lost} lost)" if lost else ""),
                span(alone),
                f"{ratio(phase['p99_ms'], alone['p99_ms']):.2f} (p99)",
                "p99 <= 50 ms",
                "yes" if phase["p99_range"][1] <= 50 and not lost else "NO",
            )
        )
    cpu = {k: push[k]["cpu_ms"] for k in ("push", "poll", "alone")}
    rows.append(
        (
            "websub: server CPU ms per update, push / poll; baseline: hub alone",
            f"{_fmt(cpu['push'])} / {_fmt(cpu['poll'])}",
            _fmt(cpu["alone"]),
            f"{ratio(cpu['push'], cpu['alone']):.2f} / {ratio(cpu['poll'], cpu['alone']):.2f}",
            "",
            "",
        )
    )
    for key, label in (("push", "hub POST"), ("poll", "poll fetch end")):
        stage = push["to_publish_ms"][key]
        rows.append(
            (
                f"websub: of which {label} -> bus.publish p50 / p99 ms",
                f"{_fmt(stage['p50'])} / {_fmt(stage['p99'])}",
                "",
                "",
                "",
                "",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {BENCHMARKS + EXTRA}"
    )
    args = parser.parse_args(argv)
    selected = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = set(selected) - set(BENCHMARKS) - set(EXTRA)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    results = run(selected, args.quick)
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(results, indent=1))
    print()
    print(
        f"liveupdates benchmarks ({'quick' if args.quick else 'full'}), "
        f"{results['cpu_count']} cores, Python {results['python']}, {results['seconds']} s"
    )
    print(markdown(results))
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
