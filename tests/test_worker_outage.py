"""A Redis outage under a real `liveupdates worker`: one line when it starts, one when it ends,
retries with backoff in between, never a traceback (issue 10, item 11)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from liveupdates.backends.availability import Availability
from liveupdates.backends.base import Signal, SignalKind
from liveupdates.backends.errors import BACKEND_ERRORS
from liveupdates.backends.redis import RedisClaims, RedisSignals
from liveupdates.store.redis import RedisStore
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.processes import Processes, redis_env
from tests.support.redis_server import RedisServerProcess
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until

# How long Redis stays down: the outage the issue measured (65 tracebacks from two workers).
OUTAGE_SECONDS = 8.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    redis = RedisServerProcess(tmp_path, persistent=True).start()
    yield redis
    redis.stop()


def log_text(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((tmp_path / "logs").glob("*")))


async def test_a_worker_logs_a_redis_outage_once_each_way(
    tmp_path: Path, own_redis: RedisServerProcess, feed_server: FeedServer
) -> None:
    feed_server.set("/gazette.xml", rss([bridge_story()]))
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        '[[feeds]]\nid = "gazette"\n'
        f'url = "{feed_server.url("/gazette.xml")}"\ninterval_seconds = 1\nadaptive = false\n'
    )
    env = redis_env(
        own_redis.url,
        "lutest:outage:",
        tmp_path,
        feeds,
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
        LIVEUPDATES_POLL_MIN_INTERVAL="0.5",
        LIVEUPDATES_FETCH_TOTAL_TIMEOUT="2",
    )
    (tmp_path / "logs").mkdir()
    procs = Processes(env, tmp_path / "logs")
    try:
        procs.start("worker", "worker")
        await until(lambda: feed_server.count("/gazette.xml") >= 2, 30, lambda: log_text(tmp_path))

        own_redis.stop()
        await until(lambda: "redis unavailable" in log_text(tmp_path), 15, "outage not noticed")
        # The outage itself (not a wait for something): a worker retrying every 0.5 s would
        # log a traceback per retry in this time.
        await asyncio.sleep(OUTAGE_SECONDS)
        own_redis.start()  # same port, same data (append-only file)

        await until(lambda: "redis back" in log_text(tmp_path), 30, lambda: log_text(tmp_path))
        polled = feed_server.count("/gazette.xml")
        await until(lambda: feed_server.count("/gazette.xml") > polled, 30, "polling never resumed")
        assert procs.procs["worker"].poll() is None, "the worker died"
    finally:
        procs.stop_all()

    text = log_text(tmp_path)
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len([line for line in lines if "redis unavailable" in line]) == 1, text
    assert len([line for line in lines if "redis back" in line]) == 1, text
    # Nothing else said WARNING or ERROR: the two state changes are the whole story.
    loud = [line for line in lines if " WARNING " in line or " ERROR " in line]
    assert len(loud) == 2, text


async def test_calls_after_a_redis_restart_do_not_fail_on_connections_from_before(
    own_redis: RedisServerProcess,
) -> None:
    """Every connection pooled before a restart is closed by the server. A call that is handed
    one must still succeed: under load a worker first uses some of them seconds after "redis
    back", and each failure there was logged as a new outage."""
    prefix = "lutest:restart:"
    store = RedisStore(own_redis.url, prefix=prefix)
    claims = RedisClaims(store.client, prefix)
    signals = RedisSignals(own_redis.url, prefix)

    async def calls_at_once(n: int = 4) -> None:  # so each pool holds n connections
        await asyncio.gather(
            *(store.set_next_poll(f"feed{i}", "2026-01-01T00:00:00.000Z") for i in range(n)),
            *(claims.claim(f"feed{i}", 30.0) for i in range(n)),
            *(signals.send(Signal(SignalKind.FEEDS)) for _ in range(n)),
        )

    try:
        await calls_at_once()
        own_redis.stop()
        own_redis.start()  # same port, same data
        await calls_at_once()
    finally:
        await signals.close()
        await store.close()


def test_availability_logs_each_change_once_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="liveupdates.backends")
    outage_error = BACKEND_ERRORS[0]("Error 111 connecting to 127.0.0.1:6379.")
    availability = Availability("redis", retry_min=0.5, retry_max=8.0)
    assert availability.retry_delay(1.0) == 1.0
    assert not availability.failed(ValueError("a bug, not an outage"))
    assert not availability.down

    delays = []
    for _ in range(8):
        assert availability.failed(outage_error)
        delays.append(availability.retry_delay(0.1))
    assert availability.down
    # Doubling (within its jitter of +-25 %) up to the cap.
    assert delays[0] <= 0.5 * 1.25 and delays[-1] >= 8.0 * 0.75
    assert max(delays) <= 8.0 * 1.25
    availability.answered()
    availability.answered()
    assert not availability.down
    assert availability.retry_delay(1.0) == 1.0

    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "redis unavailable: Error 111 connecting to 127.0.0.1:6379.",
        "redis back after 8 failed call(s)",
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_without_settling_a_failure_right_after_back_is_a_new_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hub's availability (settle=0): a 503 right after a success is down again at once,
    which stops live catch-up; a worker's (default) waits out failures of calls that were under
    way when Redis came back."""
    caplog.set_level(logging.INFO, logger="liveupdates.backends")
    hub = Availability("store or bus", settle=0.0)
    worker = Availability("redis")
    for availability in (hub, worker):
        availability.report("store unavailable: ConnectionError")
        availability.answered()
        availability.report("store unavailable: ConnectionError")
    assert hub.down and hub.outages == 2
    assert not worker.down and worker.outages == 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("store or bus unavailable: store unavailable: ConnectionError") == 2
    assert messages.count("store or bus back after 1 failed call(s)") == 1
