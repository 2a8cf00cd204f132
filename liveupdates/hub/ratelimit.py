"""A token bucket: how the hub limits what one client may send. Pure; the clock is passed in."""

from __future__ import annotations


class TokenBucket:
    """`burst` tokens to start with, refilled at `rate` per second, capped at `burst`."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled to `burst` by `now` (nothing spent recently)."""
        return self._tokens + max(0.0, now - self._last) * self.rate >= self.burst

    def drain(self, now: float, cost: float) -> None:
        """Spend up to `cost` tokens, as many as there are (a penalty, never refused)."""
        self.take(now, 0)
        self._tokens = max(0.0, self._tokens - cost)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough; say whether it was allowed."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False
