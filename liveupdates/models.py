"""Plain data shared by every stage of the pipeline.

These types carry no behaviour that does I/O, so the pure stages (normalise, identity, diff) and the
I/O stages (fetch, store, hub) can all depend on them without depending on each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# Fields of a story that a reader sees and that a diff may report, in a stable order.
STORY_FIELDS: tuple[str, ...] = (
    "title",
    "url",
    "summary",
    "authors",
    "published",
    "updated",
    "paragraphs",
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One normalised state of a story, as a reader would see it.

    `published` and `updated` are ISO 8601 UTC strings ("2026-11-26T10:49:02Z") or None.
    `guid` is the feed's own entry id, kept for identity matching; it is not shown to readers.
    """

    id: str
    feed: str
    url: str
    title: str
    summary: str = ""
    authors: tuple[str, ...] = ()
    published: str | None = None
    updated: str | None = None
    paragraphs: tuple[str, ...] = ()
    guid: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form clients see (without `guid`, with lists instead of tuples)."""
        data = asdict(self)
        data.pop("guid")
        data["authors"] = list(self.authors)
        data["paragraphs"] = list(self.paragraphs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            id=data["id"],
            feed=data["feed"],
            url=data.get("url", ""),
            title=data.get("title", ""),
            summary=data.get("summary", ""),
            authors=tuple(data.get("authors", ())),
            published=data.get("published"),
            updated=data.get("updated"),
            paragraphs=tuple(data.get("paragraphs", ())),
            guid=data.get("guid"),
        )


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A snapshot as kept by the store: numbered from 1 per story."""

    snapshot: Snapshot
    version: int
    content_hash: str
    at: str  # ISO 8601 UTC time the version was recorded


@dataclass(slots=True)
class FeedConfig:
    """A feed to poll, as ops configure it (config/feeds.toml, admin API)."""

    id: str
    url: str
    interval_seconds: float = 60.0
    title: str | None = None
    paused: bool = False
    adaptive: bool = True
    websub: bool = True  # subscribe at the feed's WebSub hub when it advertises one


@dataclass(slots=True)
class FetchState:
    """What the poller remembers between polls of one feed to be polite."""

    etag: str | None = None
    last_modified: str | None = None
    not_before: float | None = None  # unix time: do not poll before this (Retry-After)
    consecutive_errors: int = 0


@dataclass(slots=True)
class PollOutcome:
    """The result of one poll of one feed, stored for ops to see."""

    feed_id: str
    at: str  # ISO 8601 UTC, when the poll ended
    status: Literal["ok", "not_modified", "error"]
    http_status: int | None = None
    error: str | None = None
    entries: int = 0
    events: int = 0
    duration_ms: float = 0.0


@dataclass(slots=True)
class FeedHealth:
    """Everything ops need to see about one feed."""

    config: FeedConfig
    fetch: FetchState = field(default_factory=FetchState)
    last_poll: PollOutcome | None = None
    last_error: str | None = None
    stories: int = 0
    # ISO 8601 UTC time the scheduler plans the next poll (None: paused or not scheduled yet).
    # Kept in the store so a web process sees what a separate worker process decided.
    next_poll_at: str | None = None


@dataclass(frozen=True, slots=True)
class FeedListing:
    """One feed as the public list of feeds shows it (GET /v1/feeds)."""

    config: FeedConfig
    stories: int
    last_update: str | None  # ISO 8601 UTC time the feed's latest story version was stored


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event in a channel's log."""

    channel: str
    seq: int
    event: dict[str, Any]


def story_channel(story_id: str) -> str:
    return f"story:{story_id}"


def feed_channel(feed_id: str) -> str:
    return f"feed:{feed_id}"


# -- WebSub (liveupdates/websub/, docs/websub.md) ------------------------------------------

# pending: asked the hub, not verified yet; active: verified, until `expires_at`; denied: the hub
# said no; failed: the hub could not be reached or refused (`reason`); unsubscribing: we asked
# the hub to stop (kept until the hub verifies, so its unsubscribe check can be answered).
SubState = Literal["pending", "active", "denied", "failed", "unsubscribing"]
# The longest `reason` kept: it comes from outside (a hub's words, a network error's text).
MAX_REASON = 200


@dataclass(slots=True)
class WebSubSubscription:
    feed_id: str
    hub: str
    topic: str
    secret: str = field(repr=False)  # never in a log line
    token: str = field(repr=False)
    state: SubState = "pending"
    reason: str | None = None
    lease_seconds: int = 0  # asked for, or granted once active
    expires_at: float | None = None  # unix; set while active
    requested_at: float = 0.0  # unix time of the last request sent to the hub
    # Counters, kept by record_push only (put never changes them).
    pushes: int = 0
    bad_signatures: int = 0
    last_push_at: str | None = None


@dataclass(slots=True)
class PushedBody:
    """A verified pushed body waiting for the worker that ingests it."""

    feed_id: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    received_at: float = 0.0


# -- device push ---------------------------------------------------------------------------------

Platform = Literal["webpush", "apns", "fcm"]
PLATFORMS: tuple[Platform, ...] = ("webpush", "apns", "fcm")
# How a device follows a channel: "major" changes only, or every update (docs/push.md).
Notify = Literal["major", "all"]
NOTIFY_VALUES: tuple[Notify, ...] = ("major", "all")


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device: where its notifications go.

    `address` is the Web Push endpoint URL, or the APNs / FCM token. `keys` holds the Web Push
    subscription's `p256dh` and `auth` (base64url, as the browser gives them); empty otherwise.
    `environment` is "production" or "sandbox" for APNs, None for the others.
    """

    id: str
    platform: Platform
    address: str
    keys: dict[str, str] = field(default_factory=dict)
    environment: str | None = None
