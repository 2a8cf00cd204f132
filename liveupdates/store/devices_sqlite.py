"""The device-push store part on SQLite: tables in the main store's database, same connection."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, cast

from liveupdates.models import Device
from liveupdates.store.devices import (
    Cursor,
    DeviceRecord,
    Follower,
    FollowerPage,
    Notify,
    QueueStats,
    State,
    StateKey,
    StateUpdate,
    SubscriptionLimit,
)
from liveupdates.store.sqlite import SQLiteStore, in_lists

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS push_devices (
        id          TEXT PRIMARY KEY,
        platform    TEXT NOT NULL,
        address     TEXT NOT NULL,
        keys        TEXT NOT NULL,
        environment TEXT,
        secret      TEXT NOT NULL,
        seen        REAL NOT NULL,
        UNIQUE (platform, address)
    )""",
    "CREATE INDEX IF NOT EXISTS push_devices_seen ON push_devices (seen)",
    """CREATE TABLE IF NOT EXISTS push_subs (
        channel   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        notify    TEXT NOT NULL,
        PRIMARY KEY (channel, device_id)
    )""",
    "CREATE INDEX IF NOT EXISTS push_subs_device ON push_subs (device_id, channel)",
    """CREATE TABLE IF NOT EXISTS push_cursors (
        channel TEXT PRIMARY KEY,
        epoch   TEXT NOT NULL,
        seq     INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS push_claims (
        channel TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        until   REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS push_states (
        device_id TEXT NOT NULL,
        story_id  TEXT NOT NULL,
        state     TEXT NOT NULL,
        due       REAL,
        lease     REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (device_id, story_id)
    )""",
    "CREATE INDEX IF NOT EXISTS push_states_due ON push_states (due) WHERE due IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS push_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS push_stats (
        provider TEXT NOT NULL,
        outcome  TEXT NOT NULL,
        n        INTEGER NOT NULL,
        PRIMARY KEY (provider, outcome)
    )""",
)


def _due(state: State | None) -> float | None:
    if state is None or state.get("due") is None:
        return None
    return float(state["due"])


def _delete_device(c: sqlite3.Connection, device_id: str) -> bool:
    cur = c.execute("DELETE FROM push_devices WHERE id = ?", (device_id,))
    c.execute("DELETE FROM push_subs WHERE device_id = ?", (device_id,))
    c.execute("DELETE FROM push_states WHERE device_id = ?", (device_id,))
    return cur.rowcount > 0


class SQLiteDeviceStore:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._ready = False

    async def _setup(self) -> None:
        if self._ready:
            return

        def create(c: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                c.execute(statement)

        await self.store._run_write(create)
        self._ready = True

    async def _write(self, fn: Any) -> Any:
        await self._setup()
        return await self.store._run_write(fn)

    async def _read(self, fn: Any) -> Any:
        await self._setup()
        return await self.store._run(fn)

    # -- devices -----------------------------------------------------------------------------------

    async def register(self, device: Device, secret_hash: str, now: float) -> str:
        keys = json.dumps(device.keys, sort_keys=True)

        def write(c: sqlite3.Connection) -> str:
            row = c.execute(
                "SELECT id FROM push_devices WHERE platform = ? AND address = ?",
                (device.platform, device.address),
            ).fetchone()
            if row:
                c.execute(
                    "UPDATE push_devices SET keys = ?, environment = ?, secret = ?, seen = ?"
                    " WHERE id = ?",
                    (keys, device.environment, secret_hash, now, row[0]),
                )
                return str(row[0])
            c.execute(
                "INSERT INTO push_devices (id, platform, address, keys, environment, secret, seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    device.id,
                    device.platform,
                    device.address,
                    keys,
                    device.environment,
                    secret_hash,
                    now,
                ),
            )
            return device.id

        return cast(str, await self._write(write))

    async def get(self, device_id: str) -> DeviceRecord | None:
        return (await self.get_many([device_id])).get(device_id)

    async def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        ids = list(dict.fromkeys(device_ids))

        def read(c: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for page, marks in in_lists(ids):
                rows += c.execute(
                    "SELECT id, platform, address, keys, environment, secret, seen"
                    f" FROM push_devices WHERE id IN ({marks})",
                    page,
                ).fetchall()
            return rows

        rows = await self._read(read) if ids else []
        return {
            row[0]: DeviceRecord(
                Device(row[0], row[1], row[2], json.loads(row[3]), row[4]), row[5], float(row[6])
            )
            for row in rows
        }

    async def touch(self, device_id: str, now: float) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE push_devices SET seen = MAX(seen, ?) WHERE id = ?", (now, device_id)
            )
        )

    async def delete(self, device_id: str) -> bool:
        return bool(await self._write(lambda c: _delete_device(c, device_id)))

    async def expire(self, seen_before: float) -> int:
        def write(c: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM push_devices WHERE seen < ?", (seen_before,)
                ).fetchall()
            ]
            for device_id in ids:
                _delete_device(c, device_id)
            return len(ids)

        return int(await self._write(write))

    async def platform_counts(self) -> dict[str, int]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT platform, COUNT(*) FROM push_devices GROUP BY platform"
            ).fetchall()
        )
        return {r[0]: int(r[1]) for r in rows}

    # -- subscriptions -------------------------------------------------------------------------------

    async def subscribe(self, device_id: str, channel: str, notify: Notify, limit: int) -> None:
        def write(c: sqlite3.Connection) -> bool:
            known = c.execute(
                "SELECT 1 FROM push_subs WHERE channel = ? AND device_id = ?",
                (channel, device_id),
            ).fetchone()
            if not known:
                (count,) = c.execute(
                    "SELECT COUNT(*) FROM push_subs WHERE device_id = ?", (device_id,)
                ).fetchone()
                if count >= limit:
                    return False
            c.execute(
                "INSERT INTO push_subs (channel, device_id, notify) VALUES (?, ?, ?)"
                " ON CONFLICT (channel, device_id) DO UPDATE SET notify = excluded.notify",
                (channel, device_id, notify),
            )
            return True

        if not await self._write(write):
            raise SubscriptionLimit(f"a device follows at most {limit} channels")

    async def unsubscribe(self, device_id: str, channel: str) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM push_subs WHERE channel = ? AND device_id = ?", (channel, device_id)
            )
            return cur.rowcount > 0

        return bool(await self._write(write))

    async def subscriptions(self, device_id: str) -> list[tuple[str, Notify]]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT channel, notify FROM push_subs WHERE device_id = ? ORDER BY channel",
                (device_id,),
            ).fetchall()
        )
        return [(r[0], r[1]) for r in rows]

    async def followers(self, channel: str, after: str | None, limit: int) -> FollowerPage:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT device_id, notify FROM push_subs WHERE channel = ? AND device_id > ?"
                " ORDER BY device_id LIMIT ?",
                (channel, after or "", limit),
            ).fetchall()
        )
        followers = [Follower(r[0], r[1]) for r in rows]
        more = len(rows) == limit
        return FollowerPage(followers, followers[-1].device_id if more and followers else None)

    async def channels(self) -> list[str]:
        # One index seek per channel rather than DISTINCT, which walks every subscription: the
        # dispatcher asks at every scan, and a story may have 100,000 followers.
        rows = await self._read(
            lambda c: c.execute(
                "WITH RECURSIVE c(channel) AS ("
                " SELECT MIN(channel) FROM push_subs"
                " UNION ALL"
                " SELECT (SELECT MIN(channel) FROM push_subs WHERE channel > c.channel)"
                " FROM c WHERE c.channel IS NOT NULL"
                ") SELECT channel FROM c WHERE channel IS NOT NULL"
            ).fetchall()
        )
        return [r[0] for r in rows]

    # -- cursors and claims ----------------------------------------------------------------------------

    async def get_cursor(self, channel: str) -> Cursor | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT epoch, seq FROM push_cursors WHERE channel = ?", (channel,)
            ).fetchone()
        )
        return Cursor(row[0], int(row[1])) if row else None

    async def set_cursor(self, channel: str, cursor: Cursor) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO push_cursors (channel, epoch, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
                (channel, cursor.epoch, cursor.seq),
            )
        )

    async def init_cursor(self, channel: str, cursor: Cursor) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO push_cursors (channel, epoch, seq) VALUES (?, ?, ?)",
                (channel, cursor.epoch, cursor.seq),
            )
        )

    async def claim_channel(self, channel: str, owner: str, seconds: float) -> bool:
        now = time.time()

        def claim(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT INTO push_claims (channel, owner, until) VALUES (?, ?, ?)"
                " ON CONFLICT (channel) DO UPDATE SET owner = excluded.owner,"
                " until = excluded.until"
                " WHERE push_claims.until <= ? OR push_claims.owner = excluded.owner",
                (channel, owner, now + seconds, now),
            )
            return cur.rowcount > 0

        return bool(await self._write(claim))

    async def release_channel(self, channel: str, owner: str) -> None:
        await self._write(
            lambda c: c.execute(
                "DELETE FROM push_claims WHERE channel = ? AND owner = ?", (channel, owner)
            )
        )

    # -- states ----------------------------------------------------------------------------------------

    async def update_states(
        self, keys: Sequence[StateKey], update: StateUpdate
    ) -> dict[StateKey, State | None]:
        unique = list(dict.fromkeys(keys))

        def write(c: sqlite3.Connection) -> dict[StateKey, State | None]:
            out: dict[StateKey, State | None] = {}
            for key in unique:
                row = c.execute(
                    "SELECT state FROM push_states WHERE device_id = ? AND story_id = ?", key
                ).fetchone()
                old = json.loads(row[0]) if row else None
                new = update(key, old)
                out[key] = new
                if new is None:
                    if row:
                        c.execute(
                            "DELETE FROM push_states WHERE device_id = ? AND story_id = ?", key
                        )
                    continue
                text = json.dumps(new, ensure_ascii=False, separators=(",", ":"))
                due = _due(new)
                if row is None:
                    c.execute(
                        "INSERT INTO push_states (device_id, story_id, state, due, lease)"
                        " VALUES (?, ?, ?, ?, 0)",
                        (*key, text, due),
                    )
                elif due != _due(old):
                    c.execute(
                        "UPDATE push_states SET state = ?, due = ?, lease = 0"
                        " WHERE device_id = ? AND story_id = ?",
                        (text, due, *key),
                    )
                else:
                    c.execute(
                        "UPDATE push_states SET state = ? WHERE device_id = ? AND story_id = ?",
                        (text, *key),
                    )
            return out

        return cast(dict[StateKey, State | None], await self._write(write))

    async def get_state(self, key: StateKey) -> State | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT state FROM push_states WHERE device_id = ? AND story_id = ?", key
            ).fetchone()
        )
        return json.loads(row[0]) if row else None

    async def take_due(self, now: float, limit: int, lease: float) -> list[tuple[StateKey, State]]:
        def take(c: sqlite3.Connection) -> list[tuple[StateKey, State]]:
            rows = c.execute(
                "SELECT device_id, story_id, state FROM push_states"
                " WHERE due IS NOT NULL AND due <= ? AND lease <= ? ORDER BY due LIMIT ?",
                (now, now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE push_states SET lease = ? WHERE device_id = ? AND story_id = ?",
                [(now + lease, r[0], r[1]) for r in rows],
            )
            return [((r[0], r[1]), json.loads(r[2])) for r in rows]

        return cast(list[tuple[StateKey, State]], await self._write(take))

    async def queue_stats(self) -> QueueStats:
        row = await self._read(
            lambda c: c.execute(
                "SELECT COUNT(*), MIN(due) FROM push_states WHERE due IS NOT NULL"
            ).fetchone()
        )
        return QueueStats(int(row[0]), None if row[1] is None else float(row[1]))

    # -- keys and counters -----------------------------------------------------------------------------

    async def keep_vapid_key(self, private_pem: str) -> str:
        def write(c: sqlite3.Connection) -> str:
            c.execute(
                "INSERT OR IGNORE INTO push_meta (key, value) VALUES ('vapid', ?)", (private_pem,)
            )
            return str(c.execute("SELECT value FROM push_meta WHERE key = 'vapid'").fetchone()[0])

        return cast(str, await self._write(write))

    async def count(self, provider: str, outcome: str, n: int = 1) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO push_stats (provider, outcome, n) VALUES (?, ?, ?)"
                " ON CONFLICT (provider, outcome) DO UPDATE SET n = n + excluded.n",
                (provider, outcome, n),
            )
        )

    async def counters(self) -> dict[str, dict[str, int]]:
        rows = await self._read(
            lambda c: c.execute("SELECT provider, outcome, n FROM push_stats").fetchall()
        )
        out: dict[str, dict[str, int]] = {}
        for provider, outcome, n in rows:
            out.setdefault(provider, {})[outcome] = int(n)
        return out
