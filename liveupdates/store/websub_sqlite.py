"""The WebSub store part on SQLite: two tables in the main store's database, same connection."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from liveupdates.models import FeedConfig, PushedBody, WebSubSubscription
from liveupdates.store.sqlite import SQLiteStore

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS websub (
        feed_id        TEXT PRIMARY KEY,
        sub            TEXT NOT NULL,
        pushes         INTEGER NOT NULL DEFAULT 0,
        bad_signatures INTEGER NOT NULL DEFAULT 0,
        last_push_at   TEXT
    )""",
    # Action claims apart from the subscription: a feed may be claimed before it has one.
    """CREATE TABLE IF NOT EXISTS websub_actions (
        feed_id TEXT PRIMARY KEY,
        until   REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS websub_pushes (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        feed_id  TEXT NOT NULL,
        body     BLOB NOT NULL,
        headers  TEXT NOT NULL,
        received REAL NOT NULL
    )""",
)
_GET = "SELECT sub, pushes, bad_signatures, last_push_at FROM websub WHERE feed_id = ?"
_COUNTERS = ("pushes", "bad_signatures", "last_push_at")
# How often an empty queue is looked at again while take_pushes waits (SQLite cannot block).
_QUEUE_POLL = 0.05


def _sub(row: tuple[Any, ...]) -> WebSubSubscription:
    data = json.loads(row[0])
    return WebSubSubscription(**data, pushes=row[1], bad_signatures=row[2], last_push_at=row[3])


class SQLiteWebSubStore:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._ready = False

    async def _write(self, fn: Any) -> Any:
        await self._setup()
        return await self.store._run_write(fn)

    async def _read(self, fn: Any) -> Any:
        await self._setup()
        return await self.store._run(fn)

    async def _setup(self) -> None:
        if self._ready:
            return

        def create(c: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                c.execute(statement)

        await self.store._run_write(create)
        self._ready = True

    async def get(self, feed_id: str) -> WebSubSubscription | None:
        row = await self._read(lambda c: c.execute(_GET, (feed_id,)).fetchone())
        return _sub(row) if row else None

    async def push_target(
        self, feed_id: str
    ) -> tuple[WebSubSubscription | None, FeedConfig | None]:
        def read(c: sqlite3.Connection) -> tuple[Any, Any]:
            # One trip to the store's thread; the feeds table is the main store's own.
            sub = c.execute(_GET, (feed_id,)).fetchone()
            feed = c.execute("SELECT config FROM feeds WHERE id = ?", (feed_id,)).fetchone()
            return sub, feed

        sub, feed = await self._read(read)
        return (_sub(sub) if sub else None, FeedConfig(**json.loads(feed[0])) if feed else None)

    async def subscriptions(self) -> list[WebSubSubscription]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT sub, pushes, bad_signatures, last_push_at FROM websub ORDER BY feed_id"
            ).fetchall()
        )
        return [_sub(r) for r in rows]

    async def put(self, sub: WebSubSubscription) -> None:
        data = {k: v for k, v in asdict(sub).items() if k not in _COUNTERS}
        text = json.dumps(data, ensure_ascii=False)
        await self._write(
            lambda c: c.execute(
                "INSERT INTO websub (feed_id, sub) VALUES (?, ?)"
                " ON CONFLICT (feed_id) DO UPDATE SET sub = excluded.sub",
                (sub.feed_id, text),
            )
        )

    async def delete(self, feed_id: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM websub WHERE feed_id = ?", (feed_id,)))

    async def record_push(self, feed_id: str, *, valid: bool, at: str) -> None:
        if valid:
            sql = "UPDATE websub SET pushes = pushes + 1, last_push_at = ? WHERE feed_id = ?"
            params: tuple[Any, ...] = (at, feed_id)
        else:
            sql = "UPDATE websub SET bad_signatures = bad_signatures + 1 WHERE feed_id = ?"
            params = (feed_id,)
        await self._write(lambda c: c.execute(sql, params))

    async def claim_action(self, feed_id: str, seconds: float) -> bool:
        now = time.time()

        def claim(c: sqlite3.Connection) -> bool:
            # One statement inside BEGIN IMMEDIATE: two processes cannot both see it free.
            cur = c.execute(
                "INSERT INTO websub_actions (feed_id, until) VALUES (?, ?)"
                " ON CONFLICT (feed_id) DO UPDATE SET until = excluded.until"
                " WHERE websub_actions.until <= ?",
                (feed_id, now + seconds, now),
            )
            return cur.rowcount > 0

        return bool(await self._write(claim))

    async def release_action(self, feed_id: str) -> None:
        await self._write(
            lambda c: c.execute("DELETE FROM websub_actions WHERE feed_id = ?", (feed_id,))
        )

    async def enqueue_push(self, push: PushedBody) -> None:
        headers = json.dumps(push.headers, ensure_ascii=False)
        await self._write(
            lambda c: c.execute(
                "INSERT INTO websub_pushes (feed_id, body, headers, received) VALUES (?, ?, ?, ?)",
                (push.feed_id, push.body, headers, push.received_at),
            )
        )

    async def take_pushes(self, limit: int, wait: float) -> list[PushedBody]:
        def take(c: sqlite3.Connection) -> list[PushedBody]:
            rows = c.execute(
                "SELECT id, feed_id, body, headers, received FROM websub_pushes"
                " ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
            if rows:
                # Deleted in the same write transaction: no other taker gets these rows.
                c.execute("DELETE FROM websub_pushes WHERE id <= ?", (rows[-1][0],))
            return [PushedBody(r[1], bytes(r[2]), json.loads(r[3]), r[4]) for r in rows]

        deadline = time.monotonic() + wait
        while True:
            taken = await self._write(take)
            if taken or time.monotonic() >= deadline:
                return taken
            await asyncio.sleep(_QUEUE_POLL)
