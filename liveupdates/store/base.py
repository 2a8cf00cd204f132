"""The storage Protocol: every backend (SQLite, Redis) implements exactly this.

`Store` is made of four cohesive parts (feeds and health, stories and versions, channel logs,
audit); code that needs only one part may ask for only that one.

One shared contract test suite (tests/test_store_contract.py) runs against every backend, so the
pipeline and the hub never need to know which one they talk to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

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


@dataclass(frozen=True, slots=True)
class LogBounds:
    """What a channel's log holds right now.

    `first` is the oldest seq still retained (0 when the log is empty), `last` the newest (0 when no
    event was ever appended). `epoch` changes whenever the log was lost and restarted, so a client
    holding a seq from another epoch knows its position means nothing here.
    """

    first: int
    last: int
    epoch: str


@dataclass(frozen=True, slots=True)
class StoryContext:
    """What storing a changed entry needs, read at once (`StoryStore.story_context`): which
    story it is, that story's latest version, and the content hashes of the versions just
    before the latest (newest first), which the flip-flop check compares with."""

    story_id: str
    latest: StoredVersion | None
    earlier: tuple[str, ...]


class VersionConflict(Exception):
    """append_version was told to build on a version that is no longer the latest."""


def error_text(outcome: PollOutcome) -> str | None:
    """The last-error text record_poll keeps for this outcome; None when it is not an error."""
    if outcome.status != "error":
        return None
    return outcome.error or (f"HTTP {outcome.http_status}" if outcome.http_status else "error")


# -- encoding shared by the backends ----------------------------------------------------------


def utc_now_iso() -> str:
    """The time a stored version records (whole seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_record(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot as a store keeps it: to_json() plus the guid.

    to_json() drops guid (readers never see it) but the store needs it for identity matching.
    """
    data = snapshot.to_json()
    data["guid"] = snapshot.guid
    return data


def snapshot_to_json(snapshot: Snapshot) -> str:
    return json.dumps(snapshot_record(snapshot), ensure_ascii=False, separators=(",", ":"))


def dump_event(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def unique_channels(channels: Iterable[str]) -> list[str]:
    # A channel named twice would get every event twice; callers never mean that.
    return list(dict.fromkeys(channels))


class FeedStore(Protocol):
    """Feeds, their fetch state and their health: what the pollers and the admin API use."""

    async def upsert_feed(self, feed: FeedConfig) -> None: ...

    async def get_feed(self, feed_id: str) -> FeedConfig | None: ...

    async def list_feeds(self) -> list[FeedConfig]: ...

    async def feed_listing(self, after: str | None, limit: int) -> list[FeedListing]:
        """Configured feeds with an id above `after` (None: from the first), in id order, at most
        `limit`, each with its story count and when its latest story version was stored. One call
        per page of the public feed list, so it reads the page's feeds together."""
        ...

    async def delete_feed(self, feed_id: str) -> bool:
        """Forget the feed's config and fetch state. Stories and logs stay (readers may hold them)."""
        ...

    async def get_fetch_state(self, feed_id: str) -> FetchState: ...

    async def set_fetch_state(self, feed_id: str, state: FetchState) -> None: ...

    async def record_poll(
        self, outcome: PollOutcome, fetch_state: FetchState | None = None
    ) -> None:
        """Keep the latest outcome and, for errors, the last error text (`error_text(outcome)`).

        Only an error replaces the last error text: ops see the last failure even after a later
        success, next to the success itself. With `fetch_state`, also store it as the feed's fetch state (as set_fetch_state would),
        in the same atomic write: a poll ends with one write, not two.
        """
        ...

    async def feed_health(self, feed_id: str) -> FeedHealth | None: ...

    async def feeds_health(self) -> list[FeedHealth]:
        """Every feed's health, ordered by id, in one read (however many feeds)."""
        ...

    async def set_next_poll(self, feed_id: str, at: str | None) -> None:
        """Record when the scheduler will poll the feed next (ISO 8601 UTC), or None when it will
        not (paused). Shown as `FeedHealth.next_poll_at`; delete_feed forgets it."""
        ...


class AuditLog(Protocol):
    """Who changed what in the feed list."""

    async def append_audit(self, record: dict[str, Any]) -> None:
        """Keep one JSON-able record of an ops change (who, what, when, before/after)."""
        ...

    async def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest `limit` audit records, newest first."""
        ...


class StoryStore(Protocol):
    """Stories and their versions: what the ingestor writes and the hub reads."""

    async def find_story_id(self, feed_id: str, guid: str | None, url: str | None) -> str | None:
        """The id of a known story of this feed with this guid, or else with this canonical url."""
        ...

    async def latest(self, story_id: str) -> StoredVersion | None: ...

    async def story_context(
        self, feed_id: str, guid: str | None, url: str | None, story_id: str, depth: int
    ) -> StoryContext:
        """find_story_id(feed_id, guid, url) (or else `story_id`), that story's latest version
        and the content hashes of up to `depth` versions before it: one read where those are
        three, for every entry a poll finds changed."""
        ...

    async def latest_hashes(self, feed_id: str, story_ids: Sequence[str]) -> dict[str, str]:
        """story id -> content hash of its latest version, for those of `story_ids` that are
        stories of this feed; unknown ids are left out. One read, however many ids."""
        ...

    async def get_version(self, story_id: str, version: int) -> StoredVersion | None: ...

    async def story_by_url(self, url: str) -> StoredVersion | None:
        """Latest version of the story whose current (canonical) url is `url`."""
        ...

    async def feed_stories(
        self, feed_id: str, limit: int = DEFAULT_FEED_STORIES_LIMIT
    ) -> list[StoredVersion]:
        """Latest version of each story of the feed, most recently changed first."""
        ...

    async def append_version(
        self,
        snapshot: Snapshot,
        content_hash: str,
        expected_version: int,
        events: list[dict[str, Any]],
        channels: list[str],
    ) -> list[LogEntry]:
        """Atomically store version `expected_version + 1` and append each event to each channel.

        Raises VersionConflict (writing nothing) when the story's latest version is not
        `expected_version` (0 for a new story): another poller got there first. Every channel gets
        each event with the next gapless seq. Returns the log entries written, in order.
        """
        ...


class ChannelLogs(Protocol):
    """The gapless per-channel logs `append_version` writes to: what the bus and hub replay."""

    async def log_bounds(self, channel: str) -> LogBounds: ...

    async def read_log(self, channel: str, since: int, limit: int) -> list[LogEntry]:
        """Entries with seq > since, ascending, at most `limit`."""
        ...


@runtime_checkable
class Store(FeedStore, StoryStore, ChannelLogs, AuditLog, Protocol):
    """Every part, as each backend implements them all over one connection."""

    async def ping(self) -> None:
        """A cheap read-only round trip; raises if the backend cannot answer (health checks)."""
        ...

    async def close(self) -> None: ...
