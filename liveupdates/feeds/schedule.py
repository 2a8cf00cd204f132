"""When to poll a feed next: the adaptive rule. Pure: no clock, no I/O, injectable randomness.

The rule (also in docs/admin-api.md and the README):

- A feed's *pace* starts at its configured interval. The pace is the wait after a successful poll.
- Adaptive feeds (the default) move their pace within *bounds*: fastest = interval / 4 (never
  below `poll.min_interval`), slowest = interval x 4 (never above `poll.max_interval`).
  - A poll that produced events (a story was created or changed) halves the pace, starting from
    the interval at most: a quiet feed whose story goes live is back at interval / 2 at once.
  - A poll that produced nothing grows the pace by a quarter, so it takes about six quiet polls to
    ease from the fastest back to the interval, and six more to reach the slowest.
  - Fixed feeds (adaptive off) always wait exactly their interval.
- Feed hints (RSS `<ttl>`, `Cache-Control: max-age`) only ever lengthen the wait, and never beyond
  the interval while the feed is live (its last poll changed something, or its pace is below the
  interval), nor beyond the slowest bound when it is quiet. A hint can slow a quiet feed; it can
  never lock out a live story for longer than ops asked for.
- Errors back off exponentially with jitter from the interval (liveupdates/feeds/backoff.py) up to
  `poll.max_backoff`; a Retry-After is a floor, itself capped at `poll.max_backoff`. The pace is
  kept, so a feed that recovers resumes where it was; the first success ends the backoff.
- Every successful wait is spread by +-`poll.jitter` and never drops below `poll.min_interval`.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from liveupdates.feeds.backoff import jittered, next_poll_delay

# How far an adaptive feed may move from its configured interval, either way.
SPEED_RANGE = 4.0
# Pace change per poll: a change halves it, a quiet poll lengthens it by a quarter.
CHANGE_FACTOR = 0.5
QUIET_FACTOR = 1.25

_MAX_AGE_RE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE_RE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s=])", re.IGNORECASE)
# RSS 2.0 <ttl> is a channel element in minutes. Only the document's head is searched: the
# element comes before the items in practice, and a regex over megabytes would be wasted work.
_TTL_RE = re.compile(rb"<ttl>\s*(\d{1,7})\s*</ttl>", re.IGNORECASE)
_TTL_SEARCH_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Bounds:
    fastest: float
    slowest: float


@dataclass(frozen=True, slots=True)
class Plan:
    """The wait before the next poll, and the pace to remember for the poll after."""

    delay: float
    pace: float


def adaptive_bounds(interval: float, min_interval: float, max_interval: float) -> Bounds:
    """The range an adaptive feed's pace stays in; it always contains the interval itself."""
    fastest = max(min_interval, interval / SPEED_RANGE)
    slowest = min(max_interval, interval * SPEED_RANGE)
    return Bounds(fastest=min(fastest, interval), slowest=max(slowest, interval))


def next_pace(pace: float, *, changed: bool, interval: float, bounds: Bounds) -> float:
    if changed:
        return max(bounds.fastest, min(pace, interval) * CHANGE_FACTOR)
    return min(bounds.slowest, pace * QUIET_FACTOR)


def apply_hint(
    delay: float, hint: float | None, *, live: bool, interval: float, bounds: Bounds
) -> float:
    """Lengthen `delay` to the feed's own hint, within what keeps a live story live."""
    if hint is None or not math.isfinite(hint) or hint <= delay:
        return delay
    cap = interval if live else bounds.slowest
    return max(delay, min(hint, cap))


def plan_next_poll(
    *,
    interval: float,
    adaptive: bool,
    pace: float | None,
    events: int,
    errors: int,
    hint: float | None = None,
    retry_after: float | None = None,
    min_interval: float,
    max_interval: float,
    max_backoff: float,
    jitter: float = 0.0,
    rng: Callable[[], float] = random.random,
) -> Plan:
    """The whole rule for one feed after one poll (see the module docstring).

    `pace` is what the previous plan returned (None for the first poll), `events` how many story
    events the poll produced, `errors` the feed's consecutive errors after it (0: it succeeded).
    """
    bounds = adaptive_bounds(interval, min_interval, max_interval)
    current = interval if pace is None else min(max(pace, bounds.fastest), bounds.slowest)
    if errors > 0:
        floor = None if retry_after is None else min(retry_after, max_backoff)
        delay = next_poll_delay(
            interval, errors, retry_after=floor, max_backoff=max_backoff, rng=rng
        )
        return Plan(delay=delay, pace=current)
    if not adaptive:
        return Plan(delay=max(min_interval, jittered(interval, jitter, rng)), pace=interval)
    changed = events > 0
    new_pace = next_pace(current, changed=changed, interval=interval, bounds=bounds)
    live = changed or new_pace < interval
    delay = apply_hint(new_pace, hint, live=live, interval=interval, bounds=bounds)
    return Plan(delay=max(min_interval, jittered(delay, jitter, rng)), pace=new_pace)


def response_hint(headers: Mapping[str, str], body: bytes | None) -> float | None:
    """Seconds the feed itself says its content stays fresh: the longer of Cache-Control max-age
    and RSS <ttl> (minutes). None when it says nothing (or no-cache / no-store)."""
    hints: list[float] = []
    cache_control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    if cache_control and not _NO_CACHE_RE.search(cache_control):
        found = _MAX_AGE_RE.search(cache_control)
        if found:
            hints.append(float(found.group(1)))
    if body:
        found_ttl = _TTL_RE.search(body[:_TTL_SEARCH_BYTES])
        if found_ttl:
            hints.append(float(found_ttl.group(1)) * 60.0)
    positive = [h for h in hints if h > 0]
    return max(positive) if positive else None
