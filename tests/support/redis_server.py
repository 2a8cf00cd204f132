"""Pytest plugin: a real Redis for the tests that need one.

Fixtures
--------
``redis_url`` (session scope) -> str, e.g. "redis://127.0.0.1:6379/0". Found in this order:

1. ``$LIVEUPDATES_TEST_REDIS_URL`` if set (used as given, never started or stopped);
2. a Redis already answering PING on 127.0.0.1:6379;
3. a throwaway ``redis-server`` (if the binary is on PATH) on a free port, in a temp dir, with
   ``--save "" --appendonly no``, stopped when the session ends.

If none of these works the fixture FAILS (it never skips): a green run must mean Redis was tested.

``redis_prefix`` (function scope) -> str, a unique key prefix such as "lutest:1a2b3c4d:". Every key
under it is deleted (SCAN + DEL) when the test ends, so tests can share one Redis, run in parallel
and leave nothing behind. Pass it as the ``prefix`` of RedisStore / the Redis bus.

These two are plain synchronous fixtures so they work in sync and async tests alike.

``redis_client`` (function scope, async) -> redis.asyncio.Redis on ``redis_url`` with
``decode_responses=True``, closed when the test ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

ENV_VAR = "LIVEUPDATES_TEST_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
NO_REDIS = "tests need Redis: install redis-server or set LIVEUPDATES_TEST_REDIS_URL"


def _answers_ping(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis_server(port: int, workdir: str) -> subprocess.Popen[bytes] | None:
    """A throwaway redis-server on 127.0.0.1:`port` (no persistence), answering PING; None if
    there is no redis-server binary or it did not start within 10 s. The caller stops it."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers_ping(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_redis_server(proc)
            return None
        time.sleep(0.05)
    return proc


def stop_redis_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    env = os.environ.get(ENV_VAR)
    if env:
        if not _answers_ping(env, timeout=2.0):
            pytest.fail(f"{ENV_VAR}={env} does not answer PING", pytrace=False)
        yield env
        return
    if _answers_ping(DEFAULT_URL):
        yield DEFAULT_URL
        return
    with tempfile.TemporaryDirectory(prefix="lu-redis-") as workdir:
        port = _free_port()
        proc = start_redis_server(port, workdir)
        if proc is None:
            pytest.fail(f"redis-server did not start on port {port}. {NO_REDIS}", pytrace=False)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_redis_server(proc)


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with `prefix`; returns how many. Glob chars are escaped."""
    pattern = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix) + "*"
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"lutest:{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()
