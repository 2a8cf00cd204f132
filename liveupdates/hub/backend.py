"""The failures that mean the store or the bus is unreachable (not a bug): answered 503 / 1013."""

from __future__ import annotations

from liveupdates.backends.errors import BACKEND_ERRORS

__all__ = ["BACKEND_ERRORS", "BACKEND_RETRY_AFTER"]

# Seconds a client is told to wait before retrying while the store is down.
BACKEND_RETRY_AFTER = 5
