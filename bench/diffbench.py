"""Diff engine benchmark (in-process, pure CPU): liveupdates.diff.diff vs difflib over lines.

Cases:
- live blog: 2,000 paragraphs; one paragraph added at the top, one word changed in the middle,
  one paragraph removed near the end.
- rewrite: a ~1 MB story whose every paragraph is rewritten.
Baseline: `difflib.unified_diff` over the whole text split into lines (one paragraph per line),
the usual "diff the article text" approach.
"""

from __future__ import annotations

import difflib
import gc
import random
import time
from collections.abc import Callable
from typing import Any

from bench.payload import paragraph
from bench.stats import percentile
from liveupdates.diff import diff
from liveupdates.models import Snapshot


def _snap(paragraphs: list[str]) -> Snapshot:
    return Snapshot(
        id="diffbench",
        feed="bench",
        url="https://gazette.example/live/diffbench",
        title="Live: the long blog",
        paragraphs=tuple(paragraphs),
    )


def live_blog_case(n: int = 2000) -> tuple[Snapshot, Snapshot]:
    rng = random.Random(2000)
    old = [paragraph(rng, 3, 15) for _ in range(n)]
    new = list(old)
    new.insert(0, "Breaking: " + paragraph(rng, 2))  # one paragraph added (live blogs grow on top)
    middle = n // 2 + 1
    words = new[middle].split(" ")
    words[5] = "corrected"  # one word changed
    new[middle] = " ".join(words)
    del new[n - 100]  # one paragraph removed
    return _snap(old), _snap(new)


def rewrite_case(size: int = 1_000_000) -> tuple[Snapshot, Snapshot]:
    def story(seed: int) -> list[str]:
        rng = random.Random(seed)
        out: list[str] = []
        total = 0
        while total < size:
            out.append(paragraph(rng, 4, 16))
            total += len(out[-1]) + 1
        return out

    return _snap(story(1)), _snap(story(2))


def _time(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _unified(old: Snapshot, new: Snapshot) -> list[str]:
    a = "\n".join(old.paragraphs).splitlines()
    b = "\n".join(new.paragraphs).splitlines()
    return list(difflib.unified_diff(a, b, lineterm=""))


def run(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cases = {
        "live_blog_2000": (live_blog_case(), 5 if quick else 21),
        "rewrite_1mb": (rewrite_case(), 2 if quick else 5),
    }
    for name, ((old, new), repeat) in cases.items():
        d = diff(old, new, 1, 2)
        engine = _time(lambda old=old, new=new: diff(old, new, 1, 2), repeat)
        baseline = _time(lambda old=old, new=new: _unified(old, new), repeat)
        results[name] = {
            "paragraphs": [len(old.paragraphs), len(new.paragraphs)],
            "bytes": sum(len(p) + 1 for p in old.paragraphs),
            "hunks": len(d["paragraphs"]),
            "engine_ms_p50": percentile(engine, 50),
            "engine_ms_max": max(engine),
            "difflib_ms_p50": percentile(baseline, 50),
            "repeat": repeat,
        }
    return results
