"""Whether a process's backends answer: one log line when an outage starts, one when it ends.

A worker meets a Redis outage in many places at once (every feed's claim, the plan it writes,
the signals listener). Each reports here instead of logging: the first failure logs
"redis unavailable: <why>", later ones only count, and the first success after them logs
"redis back". Retries in between wait `retry_delay()`, which doubles while the outage lasts.
The hub keeps one too, for the requests it answers 503 while the store or the bus is down.
"""

from __future__ import annotations

import logging
import random
import time

from liveupdates.backends.errors import BACKEND_ERRORS

log = logging.getLogger("liveupdates.backends")

# After an outage ends, a call that failed while Redis was still coming back may be reported just
# after another call's success; failures this soon after "back" do not start a new outage unless
# they go on. (Connections pooled before the outage do not fail: liveupdates.store.redisclient.)
SETTLE_SECONDS = 2.0


def error_reason(exc: BaseException) -> str:
    """Why a call failed, in one bounded line for a log or a health answer: "OSError: ..."."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class Availability:
    """The up/down state of one process's backends, named for its log lines ("redis")."""

    def __init__(
        self,
        name: str,
        *,
        retry_min: float = 0.5,
        retry_max: float = 5.0,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.name = name
        self.settle = settle  # failures this soon after "back" start no new outage
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.problem: str | None = None  # why the backends are down; None while they answer
        self.failures = 0  # failures reported since the outage started
        self.outages = 0  # outages seen since the process started
        self._back_at = float("-inf")  # monotonic time the last outage ended
        self.closed = False  # the process is closing its backends: failures are expected

    @property
    def down(self) -> bool:
        return self.problem is not None

    def failed(self, exc: BaseException) -> bool:
        """Report a failed call. True if `exc` means the backend is unreachable (recorded, and
        logged once per outage); False for any other error, which the caller must report."""
        if not isinstance(exc, BACKEND_ERRORS):
            return False
        self.report(" ".join(str(exc).split()) or type(exc).__name__)
        return True

    def report(self, reason: str) -> None:
        """Report a failure already known to mean an outage, with why (a failed health check)."""
        self.failures += 1
        if self.closed:
            return
        if self.problem is None and time.monotonic() - self._back_at > self.settle:
            self.problem = reason
            self.outages += 1
            log.error("%s unavailable: %s", self.name, self.problem)

    def answered(self) -> None:
        """Report a call that succeeded: ends an outage (one log line)."""
        if self.problem is not None:
            self.problem = None
            self._back_at = time.monotonic()
            log.warning("%s back after %d failed call(s)", self.name, self.failures)
        self.failures = 0

    async def close(self) -> None:
        """The process closes its backends (Backends.close does this first): calls cut short
        by that are not an outage."""
        self.closed = True

    def retry_delay(self, usual: float) -> float:
        """How long to wait before trying again: `usual` while up, else a backoff that doubles
        with the failures of this outage (with jitter, so retries do not come in bursts)."""
        if self.problem is None:
            return usual
        exponent = min(max(self.failures - 1, 0), 16)
        delay = min(self.retry_min * 2**exponent, self.retry_max)
        return max(usual, delay * (0.75 + random.random() / 2))
