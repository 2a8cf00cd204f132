"""`liveupdates serve` as a real process on a free port, with a fast demo feed (pytest plugin)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from liveupdates.demo.story import FEED_TITLE
from tests.support.feedserver import ALLOW_LOOPBACK

START_DEADLINE = 40.0  # seconds for `liveupdates serve` to answer /healthz


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def served_extra_feeds() -> str:
    """More [[feeds]] tables for `served`'s feeds file; override this fixture in a test module."""
    return ""


@contextlib.contextmanager
def serving(tmp_path: Path, extra_feeds: str = "", **env_extra: str) -> Iterator[Served]:
    """`liveupdates serve` on a free port with a fast demo and its own data directory in
    `tmp_path`; `env_extra` adds LIVEUPDATES_* settings. Stopped (SIGINT) on exit."""
    port = _free_port()
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        f'[[feeds]]\nid = "demo"\ntitle = "{FEED_TITLE}"\n'
        'url = "{self}/demo/feed.xml"\ninterval_seconds = 2\n' + extra_feeds
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    env.update(
        LIVEUPDATES_DATA_DIR=str(tmp_path / "data"),
        LIVEUPDATES_HUB_DEMO_STEP="1.5",
        LIVEUPDATES_FEEDS=str(feeds),
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
        PYTHONUNBUFFERED="1",
        **env_extra,
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "liveupdates.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"liveupdates serve exited with {process.returncode}:\n{served.log_tail()}"
                )
            try:
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /healthz within {START_DEADLINE:.0f}s:\n{served.log_tail()}")
            time.sleep(0.2)  # polling a process we do not control; nothing to wait on instead
        yield served
    finally:
        _stop(process)


@pytest.fixture
def served(tmp_path: Path, served_extra_feeds: str) -> Iterator[Served]:
    """`liveupdates serve` on a free port with a fast demo and its own data directory."""
    with serving(tmp_path, served_extra_feeds) as running:
        yield running
