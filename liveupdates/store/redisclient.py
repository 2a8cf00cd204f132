"""Opening a Redis client whose calls survive the connections a Redis restart closed."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def stale_connection_retry() -> Retry:
    """Retry a call once, at once, on a new connection if its connection turned out closed.

    redis-py (8.1) gives a client built from a URL no retry (its default one is only for a client
    that builds its own pool), and its pool hands out idle connections unchecked (it skips that
    check while maintenance notifications are on, their default), so after a Redis restart every
    connection pooled before it failed its next call once: seconds later under load, when a
    worker had already logged "redis back", so a second outage.
    While Redis is really down the second try is refused just as fast. A timeout is not
    retried: the server may have run the command, and a new connection does not make it faster.
    """
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


# Connections per client (per process and backend). redis-py's own pool refuses a call at once
# (MaxConnectionsError) when all 100 are busy: in a reconnect storm a web process had thousands
# of subscribes waiting on the store at once, and the ones past 100 failed. This pool makes them
# wait their turn instead, up to POOL_WAIT_SECONDS (then a ConnectionError, as for an outage).
MAX_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10.0


def open_client(url: str, **options: Any) -> aioredis.Redis:
    """A pooled client for `url` (redis://, rediss://, unix://) with `stale_connection_retry`;
    calls beyond MAX_CONNECTIONS in flight wait for a free connection."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        retry=stale_connection_retry(),
        **options,
    )
    return aioredis.Redis.from_pool(pool)
