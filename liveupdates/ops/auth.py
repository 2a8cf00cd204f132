"""Bearer tokens for the admin API. Pure apart from reading the request's header.

Tokens come from the settings: `admin_token` (LIVEUPDATES_ADMIN_TOKEN) is the token named "admin",
`[admin_tokens]` in a settings file adds named ones. The name is what the audit log records.
Without any token the admin API is closed (503), never open.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import deque
from collections.abc import Mapping

from liveupdates.settings import Settings

HOW_TO_SET = (
    "the admin API is disabled: no admin token is configured. Set LIVEUPDATES_ADMIN_TOKEN "
    "(or [admin_tokens] in the settings file) and restart the service"
)


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def configured_tokens(settings: Settings) -> dict[str, str]:
    """{name: token}; empty tokens are ignored so an empty variable cannot open the API."""
    tokens = {name: token for name, token in settings.admin_tokens.items() if token}
    if settings.admin_token:
        tokens["admin"] = settings.admin_token
    return tokens


def token_name(tokens: Mapping[str, str], authorization: str | None) -> str:
    """The name of the token in an `Authorization: Bearer ...` header, or raise AuthError."""
    if not tokens:
        raise AuthError(503, "admin_disabled", HOW_TO_SET)
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise AuthError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    found: str | None = None
    # Digests of equal length: compare_digest would otherwise return early on a length mismatch.
    given = _digest(presented)
    # Compare against every token, without stopping at a match, so timing says nothing about
    # which token (or how much of one) matched.
    for name, token in tokens.items():
        if hmac.compare_digest(given, _digest(token)) and found is None:
            found = name
    if found is None:
        raise AuthError(401, "unauthorized", "admin token refused")
    return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# Refused tokens from one address: after FAILURE_LIMIT within FAILURE_WINDOW seconds, that address
# gets 429 until the oldest failure leaves the window (a guesser gets FAILURE_LIMIT tries a window).
FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0
MAX_TRACKED_ADDRESSES = 10_000


class FailureThrottle:
    """Counts refused admin requests per client address. Pure: the caller passes the clock."""

    def __init__(self, limit: int = FAILURE_LIMIT, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str, now: float) -> int | None:
        """Whole seconds `address` must wait before trying again, or None if it may try now."""
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        if len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, address: str, now: float) -> None:
        if address not in self._failures and len(self._failures) >= MAX_TRACKED_ADDRESSES:
            # Forget addresses whose failures are all old; under a flood of addresses, all.
            for other in [a for a, f in self._failures.items() if f[-1] <= now - self.window]:
                del self._failures[other]
            if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                self._failures.clear()
        self._failures.setdefault(address, deque(maxlen=self.limit)).append(now)
