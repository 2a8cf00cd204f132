"""SQLite-only behaviour: file setup, processes creating one file, backends chosen by URL.

Everything a Store must do is in test_store_contract.py; this file covers what only SQLite has.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from liveupdates.backends import open_backends, open_url
from liveupdates.models import LogEntry, Snapshot
from liveupdates.settings import Settings, SettingsError
from liveupdates.store.base import VersionConflict
from liveupdates.store.redis import RedisStore
from liveupdates.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def snap(story: str, title: str = "Lighthouse reopens", feed: str = "cove-courier") -> Snapshot:
    return Snapshot(id=story, feed=feed, url=f"https://cove.example/{story}", title=title)


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


async def test_backends_are_chosen_by_url(tmp_path: Path) -> None:
    opened = [
        open_url(f"sqlite://{tmp_path}/u.db", log_retention=5),
        open_url(f"sqlite:///{tmp_path}/abs.db"),
        open_backends(Settings(data_dir=str(tmp_path / "data"))),
    ]
    try:
        assert all(b.mode == "embedded" and isinstance(b.store, SQLiteStore) for b in opened)
        assert (tmp_path / "u.db").exists() and (tmp_path / "abs.db").exists()
        assert (tmp_path / "data" / "liveupdates.sqlite3").exists()
        assert opened[0].store.log_retention == 5  # type: ignore[attr-defined]
    finally:
        for b in opened:
            await b.close()
    redis = open_url("redis://127.0.0.1:1/0", prefix="x:")  # nothing connects until used
    assert redis.mode == "redis" and isinstance(redis.store, RedisStore)
    assert redis.store.prefix == "x:"
    await redis.close()
    with pytest.raises(SettingsError, match="no backend"):
        open_url("postgres://db/lu")
