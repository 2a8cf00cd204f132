"""The failures that mean the store or the bus is unreachable (an outage, not a bug).

The hub answers them 503 / 1013; a worker waits them out, logging when the outage starts and ends.
"""

from __future__ import annotations

import sqlite3

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

BACKEND_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    sqlite3.OperationalError,
)
