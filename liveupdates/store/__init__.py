"""Storage backends behind one Protocol (see base.py): SQLite for one box, Redis for many."""

from __future__ import annotations

from pathlib import Path

from liveupdates.store.base import LogBounds, Store, VersionConflict
from liveupdates.store.redis import RedisStore
from liveupdates.store.sqlite import SQLiteStore

__all__ = [
    "LogBounds",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "VersionConflict",
    "open_store",
]


def open_store(
    target: str | Path, *, log_retention: int | None = None, prefix: str = "lu:"
) -> Store:
    """Open the store `target` names.

    - "redis://..." / "rediss://..." / "unix://..." -> RedisStore (keys under `prefix`)
    - "sqlite:///abs/path.db", "sqlite://rel/path.db", ":memory:" or a plain path -> SQLiteStore
    """
    text = str(target)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(text, prefix=prefix, log_retention=log_retention)
    if text.startswith("sqlite://"):
        text = text.removeprefix("sqlite://") or ":memory:"
    return SQLiteStore(text, log_retention=log_retention)
