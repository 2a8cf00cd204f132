"""Limits for anonymous load: open connections (total and per client address) and the REST
request rate per address. Pure: the caller passes the clock reading.

Addresses are what the server sees (uvicorn's `--proxy-headers` / `forwarded_allow_ips` make that
the client behind a trusted proxy). A newsroom behind one NAT is one address, so the per-address
defaults are generous; they exist to stop one host from taking the whole service.
"""

from __future__ import annotations

import math
from collections import Counter

from liveupdates.hub.ratelimit import TokenBucket

# Seconds a refused connection is told to wait before trying again.
CONNECTION_RETRY_AFTER = 10
# Seconds a client is told to wait before retrying while the store or the bus is down.
BACKEND_RETRY_AFTER = 5
# A 400 on a public route costs this many requests of the address's budget: a client that keeps
# sending bad input is throttled sooner than one that only asks a lot.
BAD_REQUEST_COST = 5
# Request buckets kept before idle (full) ones are dropped; past twice this all are.
MAX_TRACKED_ADDRESSES = 50_000


class Refused(Exception):
    """Over a limit: `retry_after` whole seconds, `message` for the client."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ConnectionLimits:
    """Counts open WebSocket and SSE connections, in total and per address."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self.open = 0
        self._by_address: Counter[str] = Counter()

    def acquire(self, address: str) -> None:
        """Count a new connection from `address`, or raise Refused (nothing is counted then)."""
        if self.open >= self.total:
            raise Refused(
                f"server at its connection limit; retry in {CONNECTION_RETRY_AFTER} s",
                CONNECTION_RETRY_AFTER,
            )
        if self._by_address[address] >= self.per_address:
            raise Refused(
                f"too many connections from your address; retry in {CONNECTION_RETRY_AFTER} s",
                CONNECTION_RETRY_AFTER,
            )
        self.open += 1
        self._by_address[address] += 1

    def release(self, address: str) -> None:
        self.open -= 1
        left = self._by_address[address] - 1
        if left > 0:
            self._by_address[address] = left
        else:
            del self._by_address[address]

    def from_address(self, address: str) -> int:
        return self._by_address.get(address, 0)


class RequestRate:
    """A token bucket per address: `rate` requests per second, bursts of up to `burst` (default
    2 x rate)."""

    def __init__(
        self, rate: float, max_tracked: int = MAX_TRACKED_ADDRESSES, *, burst: float | None = None
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate) if burst is None else burst
        self.max_tracked = max_tracked
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, address: str, now: float) -> None:
        """Spend one request of `address`, or raise Refused with the seconds until one is free."""
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_tracked:
                self._prune(now)
            bucket = self._buckets[address] = TokenBucket(self.rate, self.burst, now)
        if not bucket.take(now):
            wait = max(1, math.ceil(1 / self.rate)) if self.rate > 0 else 60
            raise Refused(f"too many requests; retry in {wait} s", wait)

    def penalise(self, address: str, now: float, cost: float) -> None:
        """A bad request costs `cost` more requests' worth of the address's budget."""
        bucket = self._buckets.get(address)
        if bucket is not None:
            bucket.drain(now, cost)

    def _prune(self, now: float) -> None:
        # A bucket that has refilled completely carries no information: forget it.
        for address, bucket in list(self._buckets.items()):
            if bucket.full(now):
                del self._buckets[address]
        if len(self._buckets) >= self.max_tracked:
            # A flood of busy addresses: forgetting them all costs each one fresh burst, no more.
            self._buckets.clear()

    def tracked(self) -> int:
        return len(self._buckets)
