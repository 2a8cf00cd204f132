"""SQLite-only behaviour: file setup, several processes on one file, open_store dispatch.

Everything a Store must do is in test_store_contract.py; this file covers what only SQLite has.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from liveupdates.models import LogEntry, Snapshot, feed_channel, story_channel
from liveupdates.store import RedisStore, SQLiteStore, open_store
from liveupdates.store.base import Store, VersionConflict

ROOT = Path(__file__).resolve().parent.parent


def snap(story: str, title: str = "Lighthouse reopens", feed: str = "cove-courier") -> Snapshot:
    return Snapshot(id=story, feed=feed, url=f"https://cove.example/{story}", title=title)


async def append_with_retry(store: Store, story: str, event: dict[str, object]) -> list[LogEntry]:
    """What a poller does: read the latest, append on top, re-read on conflict."""
    while True:
        latest = await store.latest(story)
        expected = latest.version if latest else 0
        s = snap(story, title=f"v{expected + 1}")
        try:
            return await store.append_version(
                s,
                f"h{expected + 1}",
                expected,
                [event],
                [story_channel(story), feed_channel(s.feed)],
            )
        except VersionConflict:
            await asyncio.sleep(0)


def worker(path: str, name: str, count: int) -> None:
    """Run in a child process: append `count` events to the shared story and a private one."""

    async def main() -> None:
        store = SQLiteStore(path, busy_timeout=30)
        try:
            for i in range(count):
                await append_with_retry(store, "shared", {"worker": name, "i": i})
                await append_with_retry(store, f"own-{name}", {"worker": name, "i": i})
        finally:
            await store.close()

    asyncio.run(main())


def start_workers(path: Path, names: list[str], count: int) -> list[subprocess.Popen[bytes]]:
    code = "import sys; from tests.test_store_sqlite import worker; worker(*sys.argv[1:3], int(sys.argv[3]))"
    return [
        subprocess.Popen([sys.executable, "-c", code, str(path), name, str(count)], cwd=ROOT)
        for name in names
    ]


async def test_file_setup_wal_and_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "live.db"
    store = SQLiteStore(path)
    try:
        assert path.exists()
        raw = sqlite3.connect(path)
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0] == store.epoch
        raw.close()
        assert (await store.log_bounds("feed:x")).epoch == store.epoch
    finally:
        await store.close()
    with pytest.raises(RuntimeError):
        await store.latest("x")
    await store.close()  # closing twice is harmless


async def test_memory_store_is_private_and_works() -> None:
    one, two = SQLiteStore.memory(), SQLiteStore(":memory:")
    try:
        await one.append_version(snap("s"), "h", 0, [{"n": 1}], ["story:s"])
        assert await one.read_log("story:s", 0, 10) == [LogEntry("story:s", 1, {"n": 1})]
        assert await two.latest("s") is None
        assert one.epoch != two.epoch
    finally:
        await one.close()
        await two.close()


async def test_retention_can_change_between_opens(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    unlimited = SQLiteStore(path)
    for v in range(5):
        await unlimited.append_version(snap("s", f"t{v}"), f"h{v}", v, [{"v": v}], ["story:s"])
    await unlimited.close()
    trimmed = SQLiteStore(path, log_retention=2)
    try:
        await trimmed.append_version(snap("s", "t5"), "h5", 5, [{"v": 5}], ["story:s"])
        bounds = await trimmed.log_bounds("story:s")
        assert (bounds.first, bounds.last) == (5, 6)
    finally:
        await trimmed.close()
    with pytest.raises(ValueError):
        SQLiteStore(path, log_retention=0)


async def test_several_processes_share_one_file_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    names, count = ["w1", "w2", "w3", "w4"], 15
    procs = start_workers(path, names, count)
    codes = await asyncio.to_thread(lambda: [p.wait(timeout=120) for p in procs])
    assert codes == [0] * len(names)

    store = SQLiteStore(path)
    try:
        total = len(names) * count
        latest = await store.latest("shared")
        assert latest is not None and latest.version == total
        shared = await store.read_log(story_channel("shared"), 0, 1000)
        assert [e.seq for e in shared] == list(range(1, total + 1))
        # Every append landed exactly once, and each worker's own order is kept.
        by_worker: dict[str, list[int]] = {}
        for e in shared:
            by_worker.setdefault(e.event["worker"], []).append(e.event["i"])
        assert by_worker == {n: list(range(count)) for n in names}
        feed_log = await store.read_log(feed_channel("cove-courier"), 0, 1000)
        assert [e.seq for e in feed_log] == list(range(1, 2 * total + 1))
        for n in names:
            assert [e.seq for e in await store.read_log(f"story:own-{n}", 0, 100)] == list(
                range(1, count + 1)
            )
    finally:
        await store.close()


def test_processes_creating_the_same_file_agree_on_the_epoch(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    code = (
        "import sys; from liveupdates.store.sqlite import SQLiteStore;"
        "print(SQLiteStore(sys.argv[1]).epoch)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    epochs = {p.communicate(timeout=60)[0].decode().strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(epochs) == 1 and "" not in epochs


async def test_a_conflict_leaves_the_connection_usable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    try:
        await store.append_version(snap("s"), "h1", 0, [{"a": 1}], ["story:s"])
        with pytest.raises(VersionConflict):
            await store.append_version(snap("s"), "h1", 0, [{"a": 2}], ["story:s"])
        # No transaction was left open: another connection can write at once.
        other = sqlite3.connect(tmp_path / "c.db", timeout=0.1)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
        out = await store.append_version(snap("s", "t2"), "h2", 1, [{"a": 3}], ["story:s"])
        assert out == [LogEntry("story:s", 2, {"a": 3})]
    finally:
        await store.close()


async def test_events_are_stored_as_given(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    try:
        ev = {"type": "updated", "story": {"id": "s", "version": 99}, "diff": [["+", "Ω"]]}
        await store.append_version(snap("s"), "h", 0, [ev], ["story:s"])
        raw = sqlite3.connect(tmp_path / "e.db")
        (text,) = raw.execute("SELECT event FROM log").fetchone()
        raw.close()
        assert json.loads(text) == ev  # not rewritten by the store (version stays 99)
    finally:
        await store.close()


async def test_open_store_dispatch(tmp_path: Path) -> None:
    stores = [
        open_store(tmp_path / "p.db"),
        open_store(f"sqlite://{tmp_path}/u.db", log_retention=5),
        open_store(":memory:"),
    ]
    try:
        assert all(isinstance(s, SQLiteStore) for s in stores)
        assert (tmp_path / "u.db").exists()
        assert stores[1].log_retention == 5  # type: ignore[attr-defined]
    finally:
        for s in stores:
            await s.close()
    redis_store = open_store("redis://127.0.0.1:1/0", prefix="x:")
    assert isinstance(redis_store, RedisStore) and redis_store.prefix == "x:"
    await redis_store.close()
