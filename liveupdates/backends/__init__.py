"""The backends a process runs on, chosen once, by URL (encode/broadcaster's `_backends` is the
model): `sqlite://...` (the embedded default: SQLite, in-memory bus) or `redis://...` (scale-out).

Every process (`serve`, `web`, `worker`, `poll`) gets its store, bus, claims, signals and WebSub
part from `open_backends`; nothing else knows which backend it talks to. Backend modules are imported only
when chosen, so an embedded process never loads the Redis client.
"""

from __future__ import annotations

from liveupdates.backends.base import (
    Backends,
    Claims,
    Grant,
    Signal,
    SignalKind,
    Signals,
    lease_for,
)
from liveupdates.settings import Settings, SettingsError

__all__ = [
    "Backends",
    "Claims",
    "Grant",
    "Signal",
    "SignalKind",
    "Signals",
    "backends_url",
    "lease_for",
    "open_backends",
    "open_url",
]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def backends_url(settings: Settings) -> str:
    """`redis_url` when set, else the SQLite file under `data_dir`."""
    return settings.redis_url or f"sqlite://{settings.sqlite_path}"


def open_url(url: str, *, log_retention: int | None = None, prefix: str = "lu:") -> Backends:
    if url.startswith(REDIS_SCHEMES):
        from liveupdates.backends import redis as backend
    elif url.startswith("sqlite://"):
        from liveupdates.backends import sqlite as backend  # type: ignore[no-redef]
    else:
        raise SettingsError(f"no backend for {url!r}: use sqlite://PATH or redis://HOST")
    return backend.open_backends(url, log_retention=log_retention, prefix=prefix)


def open_backends(settings: Settings) -> Backends:
    """The backends `settings` name. Nothing connects until first used."""
    return open_url(
        backends_url(settings), log_retention=settings.retention, prefix=settings.redis_prefix
    )
