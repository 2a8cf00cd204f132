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

``RedisServerProcess(workdir, persistent=True)`` is a redis-server of a test's own, for a test that
must stop and restart Redis (tests/test_chaos.py) without touching the shared one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from tests.support.processes import free_port
from tests.support.waiting import until_sync

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


class RedisServerProcess:
    """A redis-server of our own on a loopback port, keeping its files in `workdir`.

    With `persistent`, every write is in the append-only file before it is acknowledged
    (`--appendonly yes --appendfsync always`), so `stop()` then `start()` (same port, same
    directory) is a Redis restart that keeps its data. Otherwise nothing is persisted.
    """

    def __init__(self, workdir: Path, *, persistent: bool, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(NO_REDIS)
        self.binary = binary
        self.workdir = workdir
        self.persistent = persistent
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 10.0) -> RedisServerProcess:
        """Start it and return once it answers PING; RuntimeError if it does not."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.starts += 1
        log = (self.workdir / f"redis-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        proc = self.proc
        try:
            until_sync(
                lambda: proc.poll() is not None or _answers_ping(self.url),
                timeout,
                f"redis-server did not answer on port {self.port} within {timeout:.0f}s",
                0.05,
            )
        except AssertionError as exc:
            self.stop()
            raise RuntimeError(str(exc)) from None
        if proc.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with status {proc.returncode} on port {self.port}"
            )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: a clean shutdown that flushes the append-only file)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
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
    if shutil.which("redis-server") is None:
        pytest.fail(NO_REDIS, pytrace=False)
    with tempfile.TemporaryDirectory(prefix="lu-redis-") as workdir:
        server = RedisServerProcess(Path(workdir), persistent=False)
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(f"{exc}. {NO_REDIS}", pytrace=False)
        try:
            yield server.url
        finally:
            server.stop()


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
