"""Dispatcher processes: killed halfway and restarted, nobody is left out; two on one Redis,
nobody is notified twice."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from liveupdates.backends import Backends, open_url
from liveupdates.models import Device
from liveupdates.store.devices import Cursor
from tests.support.processes import ROOT
from tests.support.pushapp import publish, story
from tests.support.waiting import until

P1 = "The harbour wall gave way at high tide on Sunday night."
P2 = "Water reached the fish market within minutes."


async def followed_story(backends: Backends, devices: int, *, change: bool = True) -> list[str]:
    """A story followed by `devices` devices, then (with `change`) changed: one notification
    owed to each."""
    await publish(backends.store, story([P1]))
    channel = "story:harbour-wall"
    bounds = await backends.store.log_bounds(channel)
    await backends.devices.init_cursor(channel, Cursor(bounds.epoch, bounds.last))
    ids = []
    for n in range(devices):
        device = Device(f"dev{n:05d}", "webpush", f"https://a.push.example/{n}", {})
        ids.append(await backends.devices.register(device, "h", 1e12))
        await backends.devices.subscribe(ids[-1], channel, "major", 5)
    if change:
        await publish(backends.store, story([P1, P2]))
    return ids


def start(url: str, prefix: str, out: Path, delay: float, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.pushworker", url, prefix, str(out), str(delay)],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_sigkilled_halfway_through_1000_devices_then_restarted(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'push.sqlite3'}"
    backends = open_url(url)
    try:
        ids = await followed_story(backends, 1000)
    finally:
        await backends.close()
    out, log = tmp_path / "sent.txt", tmp_path / "worker.log"
    first = start(url, "", out, 0.002, log)
    try:
        await until(lambda: len(lines(out)) >= 300, timeout=120, message=lambda: log.read_text())
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=15)
    finally:
        stop(first)
    at_kill = len(lines(out))
    assert at_kill < 1000, "the kill came too late to test anything"
    second = start(url, "", out, 0.0, log)
    try:

        def everyone() -> bool:
            return {line.split()[0] for line in lines(out)} >= set(ids)

        await until(everyone, timeout=120, message=lambda: log.read_text()[-3000:])
    finally:
        stop(second)
    sent = Counter(line.split()[0] for line in lines(out))
    assert set(sent) == set(ids)
    assert {line.split()[1] for line in lines(out)} == {"2"}
    # A repeat is only a send that was in flight at the kill (at most the provider's slots).
    repeats = sum(n - 1 for n in sent.values())
    assert repeats <= 16 * 2, repeats


async def test_two_push_processes_on_redis_notify_each_device_once(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    backends = open_url(redis_url, prefix=redis_prefix)
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    log = tmp_path / "workers.log"
    procs = []
    try:
        ids = await followed_story(backends, 400, change=False)
        procs = [start(redis_url, redis_prefix, out, 0.02, log) for out in outs]
        await until(lambda: log.read_text().count("dispatching") == 2, timeout=60)
        await publish(backends.store, story([P1, P2]))

        def everyone() -> bool:
            return len(lines(outs[0])) + len(lines(outs[1])) >= len(ids)

        await until(everyone, timeout=120, message=lambda: log.read_text()[-3000:])
        # Let anything that would be a duplicate arrive: the queue must be empty and stay so.
        checker = open_url(redis_url, prefix=redis_prefix)
        try:
            await until(lambda: _queue_empty(checker), timeout=30)
        finally:
            await checker.close()
    finally:
        for proc in procs:
            stop(proc)
        await backends.close()
    sent = Counter(line.split()[0] for out in outs for line in lines(out))
    assert set(sent) == set(ids)
    assert max(sent.values()) == 1
    assert lines(outs[0]) and lines(outs[1]), "both processes should have shared the work"


async def _queue_empty(backends: Backends) -> bool:
    return (await backends.devices.queue_stats()).depth == 0
