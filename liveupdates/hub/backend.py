"""The failures that mean the store or the bus is unreachable (not a bug): answered 503 / 1013."""

from __future__ import annotations

import sqlite3

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

BACKEND_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    sqlite3.OperationalError,
)
# Seconds a client is told to wait before retrying while the store is down.
BACKEND_RETRY_AFTER = 5
