"""Checking a pushed body's X-Hub-Signature (WebSub §8). Pure.

The header is `method=hexdigest`, an HMAC of the raw body keyed with the subscription's secret.
sha1 is still allowed by the Recommendation (hubs commonly send it); anything else is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

ALGORITHMS: dict[str, Any] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    """The header value a hub sends for `body` (tests and the benchmark hub use it too)."""
    return f"{method}={hmac.new(secret.encode(), body, ALGORITHMS[method]).hexdigest()}"


def valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True only for a well-formed header whose HMAC matches, compared in constant time."""
    if not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest().encode()
    try:
        supplied = given.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, supplied)
