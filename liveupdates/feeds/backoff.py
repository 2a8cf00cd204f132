"""How long to wait before polling a feed again. Pure: no clock, no I/O, injectable randomness.

Polling never stops: every delay returned here is finite, so a feed that has been failing for a
week is still retried (at most `max_backoff` apart) and recovers on its own when it comes back.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

DEFAULT_MAX_BACKOFF = 3600.0
# A Retry-After beyond a day is more likely a misconfigured server than a real request to wait.
MAX_RETRY_AFTER = 86400.0
# 2**64 times any sane interval is far past any cap; stopping here keeps the float math finite.
_MAX_EXPONENT = 64


def next_poll_delay(
    interval_seconds: float,
    consecutive_errors: int,
    *,
    retry_after: float | None = None,
    max_backoff: float = DEFAULT_MAX_BACKOFF,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next poll of one feed.

    Without errors this is the configured interval. After `n` consecutive errors it backs off
    exponentially from the interval: the ceiling is `interval * 2**n`, capped at `max_backoff`
    (but never below the interval itself), and the delay is drawn from the upper half of
    [0, ceiling] ("equal jitter"). Equal rather than full jitter so each failure really does push
    the next attempt further out while still spreading feeds that failed together (e.g. when a
    shared upstream went down) instead of having them retry in lockstep.

    `retry_after` (seconds, from the server's Retry-After) is a floor for this feed only.

    Raises ValueError for a non-positive or non-finite interval: that is a configuration bug,
    not something to paper over with a guess.
    """
    if not math.isfinite(interval_seconds) or interval_seconds <= 0:
        raise ValueError(
            f"interval_seconds must be a positive finite number, got {interval_seconds!r}"
        )
    if not math.isfinite(max_backoff) or max_backoff <= 0:
        raise ValueError(f"max_backoff must be a positive finite number, got {max_backoff!r}")

    delay = interval_seconds
    errors = max(0, consecutive_errors)
    if errors:
        ceiling = max(
            interval_seconds, min(interval_seconds * 2 ** min(errors, _MAX_EXPONENT), max_backoff)
        )
        delay = max(interval_seconds, ceiling / 2 + _unit(rng) * ceiling / 2)

    floor = _clamp_retry_after(retry_after)
    return max(delay, floor)


def jittered(
    interval_seconds: float, fraction: float = 0.1, rng: Callable[[], float] = random.random
) -> float:
    """The interval shifted by up to ±`fraction` of itself.

    Spreads the normal polls of feeds that share an interval (and were all scheduled at start-up)
    so they do not hit the network, and any one host, at the same instant.
    """
    fraction = min(max(fraction, 0.0), 0.9)  # keep the result strictly positive
    return interval_seconds * (1.0 + fraction * (2.0 * _unit(rng) - 1.0))


def _unit(rng: Callable[[], float]) -> float:
    # A custom rng outside [0, 1] must not break the guarantees above.
    value = rng()
    if not math.isfinite(value):
        return 0.0
    return min(max(value, 0.0), 1.0)


def _clamp_retry_after(retry_after: float | None) -> float:
    if retry_after is None or math.isnan(retry_after):
        return 0.0
    return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
