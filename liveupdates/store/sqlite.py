"""SQLite backend for the Store Protocol.

One sqlite3 connection per SQLiteStore, used from worker threads (`asyncio.to_thread`) under a
threading lock: every call is a short local-disk operation, so the lock costs little and it keeps
the event loop free while SQLite waits on the disk or on another process's write lock.

Several processes (or several SQLiteStore objects) may open the same file: the database runs in WAL
mode so readers never block the writer, and every write starts with BEGIN IMMEDIATE so two writers
serialise on SQLite's own lock (waiting up to `busy_timeout`) instead of failing half-way.

Channel seqs come from a per-channel counter table, not from MAX(seq) of the log, so they stay
gapless even after retention has deleted the oldest rows (or all of them).

The epoch is a random token written into the `meta` table when the database file is created: a
database that was lost or deleted and recreated gets a new epoch, so a reader holding a seq from the
old file is told to reset instead of silently missing events.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from liveupdates.api.models import DEFAULT_FEED_STORIES_LIMIT
from liveupdates.models import (
    FeedConfig,
    FeedHealth,
    FeedListing,
    FetchState,
    LogEntry,
    PollOutcome,
    Snapshot,
    StoredVersion,
)
from liveupdates.store.base import (
    LogBounds,
    StoryContext,
    VersionConflict,
    dump_event,
    error_text,
    snapshot_to_json,
    unique_channels,
    utc_now_iso,
)
from liveupdates.store.batch import Batcher

T = TypeVar("T")

MEMORY = ":memory:"

# Ids per `IN (...)` list: well under SQLite's smallest limit on bound parameters (999).
_IN_CHUNK = 500


def in_lists(ids: Sequence[str]) -> Iterator[tuple[Sequence[str], str]]:
    """`ids` in pieces small enough for one `IN (...)` each, with that piece's "?,?,...": SQLite
    caps the number of bound parameters per statement."""
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feeds (
    id     TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fetch_state (
    feed_id TEXT PRIMARY KEY,
    state   TEXT NOT NULL
);
-- When the scheduler plans the next poll, apart from fetch_state so the poller's writes of
-- its validators never race the scheduler's writes of the plan.
CREATE TABLE IF NOT EXISTS schedule (
    feed_id      TEXT PRIMARY KEY,
    next_poll_at TEXT
);
-- Ops changes, in the order they happened (id only grows).
CREATE TABLE IF NOT EXISTS audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS polls (
    feed_id    TEXT PRIMARY KEY,
    outcome    TEXT,
    last_error TEXT
);
-- One row per story: the latest version and the fields lookups need, so reads never scan versions.
-- `change` is the rowid of the latest version row, which only grows: it orders "most recently
-- changed" without depending on clock resolution.
CREATE TABLE IF NOT EXISTS stories (
    id      TEXT PRIMARY KEY,
    feed_id TEXT NOT NULL,
    latest  INTEGER NOT NULL,
    url     TEXT NOT NULL,
    change  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stories_feed_change ON stories (feed_id, change);
CREATE INDEX IF NOT EXISTS stories_url ON stories (url, change);
CREATE TABLE IF NOT EXISTS versions (
    story_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    feed_id      TEXT NOT NULL,
    guid         TEXT,
    content_hash TEXT NOT NULL,
    at           TEXT NOT NULL,
    snapshot     TEXT NOT NULL,
    PRIMARY KEY (story_id, version)
);
CREATE INDEX IF NOT EXISTS versions_feed_guid ON versions (feed_id, guid);
CREATE TABLE IF NOT EXISTS channels (
    channel  TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    channel TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    event   TEXT NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
"""


# A feed's health in one statement (feeds_health: every feed's, in one read).
_HEALTH = (
    "SELECT f.config, s.state, p.outcome, p.last_error,"
    " (SELECT COUNT(*) FROM stories WHERE stories.feed_id = f.id), n.next_poll_at"
    " FROM feeds f"
    " LEFT JOIN fetch_state s ON s.feed_id = f.id"
    " LEFT JOIN polls p ON p.feed_id = f.id"
    " LEFT JOIN schedule n ON n.feed_id = f.id"
)


# A story's latest version, as StoredVersion's row.
_LATEST = (
    "SELECT v.snapshot, v.version, v.content_hash, v.at FROM stories s"
    " JOIN versions v ON v.story_id = s.id AND v.version = s.latest WHERE s.id = ?"
)


def _health(row: tuple[Any, ...]) -> FeedHealth:
    config, state, outcome, last_error, stories, next_poll_at = row
    return FeedHealth(
        config=FeedConfig(**json.loads(config)),
        fetch=FetchState(**json.loads(state)) if state else FetchState(),
        last_poll=PollOutcome(**json.loads(outcome)) if outcome else None,
        last_error=last_error,
        stories=stories,
        next_poll_at=next_poll_at,
    )


class SQLiteStore:
    """Store backed by one SQLite file (or ":memory:" for quick, single-object use).

    `log_retention` is the maximum number of entries kept per channel (None keeps everything);
    seqs stay gapless either way, `log_bounds(...).first` tells what is still readable.
    `busy_timeout` (seconds) is how long a write waits for another process holding the write lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        log_retention: int | None = None,
        busy_timeout: float = 10.0,
    ) -> None:
        if log_retention is not None and log_retention < 1:
            raise ValueError("log_retention must be at least 1 (or None for unlimited)")
        self.path = str(path)
        self.log_retention = log_retention
        self._lock = threading.Lock()
        if self.path != MEMORY and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN ourselves, so a write is never silently deferred
        # (a deferred BEGIN upgrading to a write lock can fail with SQLITE_BUSY without waiting).
        self._conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout,
            uri=self.path.startswith("file:"),
        )
        self._closed = False
        # A locked or unreachable database fails a whole batch: retrying each item alone
        # would only queue every later caller behind N more busy timeouts.
        self._state_reads = Batcher(self._read_fetch_states, outage=(sqlite3.OperationalError,))
        self._poll_writes = Batcher(self._write_polls, outage=(sqlite3.OperationalError,))
        self._plan_writes = Batcher(self._write_plans, outage=(sqlite3.OperationalError,))
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if self.path != MEMORY:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        with self._write() as cur:
            cur.executescript_in_tx(_SCHEMA)
            cur.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)",
                (secrets.token_hex(8),),
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        self.epoch: str = row[0]

    @classmethod
    def memory(cls, *, log_retention: int | None = None) -> SQLiteStore:
        """A private in-memory database: for tests and demos, gone when closed."""
        return cls(MEMORY, log_retention=log_retention)

    # -- plumbing ------------------------------------------------------------------------------

    def _write(self) -> _WriteTx:
        return _WriteTx(self._conn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._closed:
                    raise RuntimeError("SQLiteStore is closed")
                return fn(self._conn)

        return await asyncio.to_thread(locked)

    async def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def in_tx(conn: sqlite3.Connection) -> T:
            with _WriteTx(conn):
                return fn(conn)

        return await self._run(in_tx)

    async def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # A read spanning several SELECTs runs in one deferred transaction so it sees one
        # consistent snapshot even while another process writes.
        def in_tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return await self._run(in_tx)

    # -- feeds -----------------------------------------------------------------------------------

    async def upsert_feed(self, feed: FeedConfig) -> None:
        data = json.dumps(asdict(feed), ensure_ascii=False)
        await self._run_write(
            lambda c: c.execute(
                "INSERT INTO feeds (id, config) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET config = excluded.config",
                (feed.id, data),
            )
        )

    async def get_feed(self, feed_id: str) -> FeedConfig | None:
        row = await self._run(
            lambda c: c.execute("SELECT config FROM feeds WHERE id = ?", (feed_id,)).fetchone()
        )
        return FeedConfig(**json.loads(row[0])) if row else None

    async def list_feeds(self) -> list[FeedConfig]:
        rows = await self._run(
            lambda c: c.execute("SELECT config FROM feeds ORDER BY id").fetchall()
        )
        return [FeedConfig(**json.loads(r[0])) for r in rows]

    async def feed_listing(self, after: str | None, limit: int) -> list[FeedListing]:
        if limit <= 0:
            return []
        rows = await self._run_read(
            lambda c: c.execute(
                "SELECT f.config,"
                " (SELECT COUNT(*) FROM stories s WHERE s.feed_id = f.id),"
                " (SELECT v.at FROM stories s"
                "  JOIN versions v ON v.story_id = s.id AND v.version = s.latest"
                "  WHERE s.feed_id = f.id ORDER BY s.change DESC LIMIT 1)"
                " FROM feeds f WHERE f.id > ? ORDER BY f.id LIMIT ?",
                (after or "", limit),
            ).fetchall()
        )
        return [FeedListing(FeedConfig(**json.loads(r[0])), r[1], r[2]) for r in rows]

    async def delete_feed(self, feed_id: str) -> bool:
        def delete(c: sqlite3.Connection) -> bool:
            gone = c.execute("DELETE FROM feeds WHERE id = ?", (feed_id,)).rowcount
            c.execute("DELETE FROM fetch_state WHERE feed_id = ?", (feed_id,))
            c.execute("DELETE FROM schedule WHERE feed_id = ?", (feed_id,))
            return gone > 0

        return await self._run_write(delete)

    async def get_fetch_state(self, feed_id: str) -> FetchState:
        # Batched: a poller reads many feeds' states at once (liveupdates/store/batch.py).
        return await self._state_reads.submit(feed_id)

    async def _read_fetch_states(self, feed_ids: Sequence[str]) -> list[FetchState]:
        def read(c: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for chunk, marks in in_lists(list(dict.fromkeys(feed_ids))):
                found.update(
                    c.execute(
                        f"SELECT feed_id, state FROM fetch_state WHERE feed_id IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            return found

        rows = await self._run(read)
        return [FetchState(**json.loads(rows[f])) if f in rows else FetchState() for f in feed_ids]

    async def set_fetch_state(self, feed_id: str, state: FetchState) -> None:
        data = json.dumps(asdict(state))
        await self._run_write(
            lambda c: c.execute(
                "INSERT INTO fetch_state (feed_id, state) VALUES (?, ?)"
                " ON CONFLICT (feed_id) DO UPDATE SET state = excluded.state",
                (feed_id, data),
            )
        )

    async def record_poll(
        self, outcome: PollOutcome, fetch_state: FetchState | None = None
    ) -> None:
        # Batched: the outcomes of polls that end together are written in one transaction
        # (liveupdates/store/batch.py); each caller returns once its own is committed.
        await self._poll_writes.submit((outcome, fetch_state))

    async def _write_polls(
        self, polls: Sequence[tuple[PollOutcome, FetchState | None]]
    ) -> list[None]:
        rows = [
            (
                outcome.feed_id,
                json.dumps(asdict(outcome), ensure_ascii=False),
                error_text(outcome),  # None keeps the previous last_error (COALESCE below)
                json.dumps(asdict(state)) if state is not None else None,
            )
            for outcome, state in polls
        ]

        def write(c: sqlite3.Connection) -> None:
            for feed_id, data, error, state in rows:
                c.execute(
                    "INSERT INTO polls (feed_id, outcome, last_error) VALUES (?, ?, ?)"
                    " ON CONFLICT (feed_id) DO UPDATE SET outcome = excluded.outcome,"
                    " last_error = COALESCE(excluded.last_error, polls.last_error)",
                    (feed_id, data, error),
                )
                if state is not None:
                    c.execute(
                        "INSERT INTO fetch_state (feed_id, state) VALUES (?, ?)"
                        " ON CONFLICT (feed_id) DO UPDATE SET state = excluded.state",
                        (feed_id, state),
                    )

        await self._run_write(write)
        return [None] * len(rows)

    async def feed_health(self, feed_id: str) -> FeedHealth | None:
        rows = await self._run_read(
            lambda c: c.execute(_HEALTH + " WHERE f.id = ?", (feed_id,)).fetchall()
        )
        return _health(rows[0]) if rows else None

    async def feeds_health(self) -> list[FeedHealth]:
        rows = await self._run_read(lambda c: c.execute(_HEALTH + " ORDER BY f.id").fetchall())
        return [_health(row) for row in rows]

    async def set_next_poll(self, feed_id: str, at: str | None) -> None:
        # Batched: a scheduler plans a poll after every poll, many at once.
        await self._plan_writes.submit((feed_id, at))

    async def _write_plans(self, plans: Sequence[tuple[str, str | None]]) -> list[None]:
        await self._run_write(
            lambda c: c.executemany(
                "INSERT INTO schedule (feed_id, next_poll_at) VALUES (?, ?)"
                " ON CONFLICT (feed_id) DO UPDATE SET next_poll_at = excluded.next_poll_at",
                plans,
            )
        )
        return [None] * len(plans)

    # -- audit -----------------------------------------------------------------------------------

    async def append_audit(self, record: dict[str, Any]) -> None:
        data = json.dumps(record, ensure_ascii=False)
        await self._run_write(lambda c: c.execute("INSERT INTO audit (record) VALUES (?)", (data,)))

    async def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        rows = await self._run(
            lambda c: c.execute(
                "SELECT record FROM audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [json.loads(r[0]) for r in rows]

    # -- stories ---------------------------------------------------------------------------------

    @staticmethod
    def _version(row: tuple[Any, ...]) -> StoredVersion:
        snapshot_json, version, content_hash, at = row
        return StoredVersion(
            snapshot=Snapshot.from_json(json.loads(snapshot_json)),
            version=version,
            content_hash=content_hash,
            at=at,
        )

    async def find_story_id(self, feed_id: str, guid: str | None, url: str | None) -> str | None:
        return await self._run_read(lambda c: self._find_story_id(c, feed_id, guid, url))

    @staticmethod
    def _find_story_id(
        c: sqlite3.Connection, feed_id: str, guid: str | None, url: str | None
    ) -> str | None:
        if guid:
            # Any version counts: a feed that rewrites an entry's guid must not split the story.
            row = c.execute(
                "SELECT story_id FROM versions WHERE feed_id = ? AND guid = ?"
                " ORDER BY version DESC LIMIT 1",
                (feed_id, guid),
            ).fetchone()
            if row:
                return str(row[0])
        if url:
            row = c.execute(
                "SELECT id FROM stories WHERE feed_id = ? AND url = ? ORDER BY change DESC LIMIT 1",
                (feed_id, url),
            ).fetchone()
            if row:
                return str(row[0])
        return None

    async def story_context(
        self, feed_id: str, guid: str | None, url: str | None, story_id: str, depth: int
    ) -> StoryContext:
        def read(c: sqlite3.Connection) -> StoryContext:
            sid = self._find_story_id(c, feed_id, guid, url) or story_id
            row = c.execute(_LATEST, (sid,)).fetchone()
            if row is None:
                return StoryContext(sid, None, ())
            hashes = c.execute(
                "SELECT content_hash FROM versions WHERE story_id = ? AND version < ?"
                " ORDER BY version DESC LIMIT ?",
                (sid, row[1], max(0, depth)),
            ).fetchall()
            return StoryContext(sid, self._version(row), tuple(h[0] for h in hashes))

        return await self._run_read(read)

    async def latest(self, story_id: str) -> StoredVersion | None:
        row = await self._run(lambda c: c.execute(_LATEST, (story_id,)).fetchone())
        return self._version(row) if row else None

    async def latest_hashes(self, feed_id: str, story_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(story_ids))
        if not ids:
            return {}

        def read(c: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for chunk, marks in in_lists(ids):
                rows = c.execute(
                    "SELECT s.id, v.content_hash FROM stories s"
                    " JOIN versions v ON v.story_id = s.id AND v.version = s.latest"
                    f" WHERE s.feed_id = ? AND s.id IN ({marks})",
                    (feed_id, *chunk),
                ).fetchall()
                found.update(rows)
            return found

        return await self._run_read(read)

    async def get_version(self, story_id: str, version: int) -> StoredVersion | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT snapshot, version, content_hash, at FROM versions"
                " WHERE story_id = ? AND version = ?",
                (story_id, version),
            ).fetchone()
        )
        return self._version(row) if row else None

    async def story_by_url(self, url: str) -> StoredVersion | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT v.snapshot, v.version, v.content_hash, v.at FROM stories s"
                " JOIN versions v ON v.story_id = s.id AND v.version = s.latest"
                " WHERE s.url = ? ORDER BY s.change DESC LIMIT 1",
                (url,),
            ).fetchone()
        )
        return self._version(row) if row else None

    async def feed_stories(
        self, feed_id: str, limit: int = DEFAULT_FEED_STORIES_LIMIT
    ) -> list[StoredVersion]:
        if limit <= 0:
            return []
        rows = await self._run(
            lambda c: c.execute(
                "SELECT v.snapshot, v.version, v.content_hash, v.at FROM stories s"
                " JOIN versions v ON v.story_id = s.id AND v.version = s.latest"
                " WHERE s.feed_id = ? ORDER BY s.change DESC LIMIT ?",
                (feed_id, limit),
            ).fetchall()
        )
        return [self._version(r) for r in rows]

    async def append_version(
        self,
        snapshot: Snapshot,
        content_hash: str,
        expected_version: int,
        events: list[dict[str, Any]],
        channels: list[str],
    ) -> list[LogEntry]:
        snapshot_json = snapshot_to_json(snapshot)
        event_json = [dump_event(e) for e in events]
        targets = unique_channels(channels)
        at = utc_now_iso()
        retention = self.log_retention

        def append(c: sqlite3.Connection) -> list[LogEntry]:
            row = c.execute("SELECT latest FROM stories WHERE id = ?", (snapshot.id,)).fetchone()
            current = row[0] if row else 0
            if current != expected_version:
                raise VersionConflict(
                    f"story {snapshot.id}: expected version {expected_version}, latest is {current}"
                )
            version = expected_version + 1
            cur = c.execute(
                "INSERT INTO versions"
                " (story_id, version, feed_id, guid, content_hash, at, snapshot)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    snapshot.id,
                    version,
                    snapshot.feed,
                    snapshot.guid,
                    content_hash,
                    at,
                    snapshot_json,
                ),
            )
            # The versions rowid only ever grows (rows are never deleted): a free change counter.
            change = cur.lastrowid
            c.execute(
                "INSERT INTO stories (id, feed_id, latest, url, change) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET feed_id = excluded.feed_id,"
                " latest = excluded.latest, url = excluded.url, change = excluded.change",
                (snapshot.id, snapshot.feed, version, snapshot.url, change),
            )
            entries: list[LogEntry] = []
            if not event_json or not targets:
                return entries
            last: dict[str, int] = {}
            for channel in targets:
                r = c.execute(
                    "SELECT last_seq FROM channels WHERE channel = ?", (channel,)
                ).fetchone()
                last[channel] = r[0] if r else 0
            rows = []
            for text in event_json:
                for channel in targets:
                    last[channel] += 1
                    rows.append((channel, last[channel], text))
                    entries.append(LogEntry(channel, last[channel], json.loads(text)))
            c.executemany("INSERT INTO log (channel, seq, event) VALUES (?, ?, ?)", rows)
            c.executemany(
                "INSERT INTO channels (channel, last_seq) VALUES (?, ?)"
                " ON CONFLICT (channel) DO UPDATE SET last_seq = excluded.last_seq",
                list(last.items()),
            )
            if retention is not None:
                c.executemany(
                    "DELETE FROM log WHERE channel = ? AND seq <= ?",
                    [(ch, seq - retention) for ch, seq in last.items() if seq > retention],
                )
            return entries

        return await self._run_write(append)

    # -- channel logs ----------------------------------------------------------------------------

    async def log_bounds(self, channel: str) -> LogBounds:
        def read(c: sqlite3.Connection) -> LogBounds:
            r = c.execute("SELECT last_seq FROM channels WHERE channel = ?", (channel,)).fetchone()
            first = c.execute(
                "SELECT seq FROM log WHERE channel = ? ORDER BY seq LIMIT 1", (channel,)
            ).fetchone()
            return LogBounds(
                first=first[0] if first else 0, last=r[0] if r else 0, epoch=self.epoch
            )

        return await self._run_read(read)

    async def read_log(self, channel: str, since: int, limit: int) -> list[LogEntry]:
        if limit <= 0:
            return []
        rows = await self._run(
            lambda c: c.execute(
                "SELECT seq, event FROM log WHERE channel = ? AND seq > ? ORDER BY seq LIMIT ?",
                (channel, since, limit),
            ).fetchall()
        )
        return [LogEntry(channel, seq, json.loads(text)) for seq, text in rows]

    async def ping(self) -> None:
        await self._run_read(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def close(c: sqlite3.Connection) -> None:
            self._closed = True
            c.close()

        if not self._closed:
            await self._run(close)


class _WriteTx:
    """BEGIN IMMEDIATE ... COMMIT, rolling back on any exception (VersionConflict included)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> _WriteTx:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executescript_in_tx(self, script: str) -> None:
        # executescript() would COMMIT first; run the statements one by one inside our transaction.
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
