"""What a push service's HTTP answer means for the dispatcher, shared by the providers.

Pure: status codes and headers in, a SendResult out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from liveupdates.feeds.fetch import parse_retry_after
from liveupdates.netguard.policy import AddressRefused
from liveupdates.push.model import SendResult

# Enough of a refusal's body to tell ops why, never a whole page.
DETAIL_CHARS = 200


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from the answer's Retry-After (delta-seconds or HTTP-date), None without one."""
    value = headers.get("retry-after")
    return None if value is None else parse_retry_after(value, now=time.time())


def retry(status: int, headers: Mapping[str, str], detail: str = "") -> SendResult:
    """429 or 5xx: try again later, after Retry-After when the service said."""
    return SendResult("retry", retry_after=retry_after(headers), detail=short(f"{status} {detail}"))


def unanswered(exc: Exception) -> SendResult:
    """A request that got no answer: refused by the address guard fails (trying again cannot
    help), a network error or timeout is tried again."""
    if isinstance(exc, AddressRefused):
        return SendResult("failed", detail=str(exc))
    return SendResult("retry", detail=short(f"{type(exc).__name__}: {exc}"))


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def short(text: str) -> str:
    """One line of at most DETAIL_CHARS characters."""
    line = " ".join(text.split())
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 1] + "…"
