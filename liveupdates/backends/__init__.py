"""The backends a process runs on, chosen once, by URL (encode/broadcaster's `_backends` is the
model): `sqlite://...` (the embedded default: SQLite, in-memory bus) or `redis://...` (scale-out).

Every process (`serve`, `web`, `worker`, `poll`) gets its store, bus, claims, signals and WebSub
part from `open_backends`; nothing else knows which backend it talks to. Backend modules are imported only
when chosen, so an embedded process never loads the Redis client.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

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
from liveupdates.startup import StartupError

__all__ = [
    "Backends",
    "Claims",
    "Grant",
    "Signal",
    "SignalKind",
    "Signals",
    "backends_url",
    "check_reachable",
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


# How long a process waits at start for its store and bus to answer.
REACHABLE_TIMEOUT = 5.0


def shown_url(url: str) -> str:
    """`url` fit for a log line or an error message: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + parts.netloc.rsplit("@", 1)[1]).geturl()


async def check_reachable(
    backends: Backends, settings: Settings, *, timeout: float = REACHABLE_TIMEOUT
) -> None:
    """At start: the store and the bus answer (a Redis PING in Redis mode), or StartupError
    with one line saying which and why. A process must not start without them."""
    where = (
        f"Redis at {shown_url(backends_url(settings))}"
        if backends.mode == "redis"
        else f"the SQLite store {settings.sqlite_path}"
    )
    for part, ping in (("store", backends.store.ping), ("bus", backends.bus.ping)):
        try:
            await asyncio.wait_for(ping(), timeout)
        except TimeoutError:
            raise StartupError(f"cannot reach {where}: no answer within {timeout:g} s") from None
        except Exception as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise StartupError(f"cannot reach {where} ({part}): {why}") from None
