"""The admin API's bodies and answers as msgspec Structs: ops/feeds.py validates request bodies
with NewFeed / FeedChange, and ops/openapi.py makes the admin document's schemas from all of them.

Bounds that depend on settings (the poll interval) or on other feeds (duplicates), and the id
pattern, are checked by ops/feeds.py after decoding, as 422 / 409: they are in the schema as
descriptions and `pattern`, but a body that breaks them is well-formed (400 is for malformed).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from liveupdates.feeds.config import FEED_ID_RE
from liveupdates.validate import MAX_NUMBER

# Longest url, id or title accepted (ids are further limited by their pattern).
MAX_TEXT = 4096
DEFAULT_INTERVAL = 60.0
FEED_ID_PATTERN = f"^{FEED_ID_RE.pattern}$"  # the rule feeds/config.py checks, for the document

Url = Annotated[str, Meta(max_length=MAX_TEXT, description="http or https")]
Title = Annotated[str, Meta(max_length=MAX_TEXT)] | None
Interval = Annotated[
    float,
    Meta(
        ge=-MAX_NUMBER,
        le=MAX_NUMBER,
        description="seconds, within the poll.min_interval..poll.max_interval settings (else 422)",
    ),
]
FeedId = Annotated[
    str,
    Meta(
        max_length=MAX_TEXT,
        description="default: derived from the URL's host and a hash; else 422 invalid_id",
        extra_json_schema={"pattern": FEED_ID_PATTERN},
    ),
]
Timestamp = Annotated[str, Meta(description="UTC, ISO 8601")]


class NewFeed(Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    id: FeedId | UnsetType = UNSET
    title: Title = None
    interval_seconds: Interval = DEFAULT_INTERVAL
    paused: bool = False
    adaptive: bool = True
    websub: bool = True


class FeedChange(Struct, kw_only=True, forbid_unknown_fields=True):
    """At least one field. A feed's id cannot be changed."""

    url: Url | UnsetType = UNSET
    title: Title | UnsetType = UNSET
    interval_seconds: Interval | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    adaptive: bool | UnsetType = UNSET
    websub: bool | UnsetType = UNSET


class WebSubView(Struct, kw_only=True):
    """The feed's push subscription at its WebSub hub (docs/websub.md)."""

    state: Literal["off", "pending", "active", "denied", "failed"]
    summary: Annotated[str, Meta(description="e.g. 'active until ...'")]
    reason: str | None = None
    hub: str | None = None
    topic: str | None = None
    active_until: Timestamp | None = None
    last_push_at: Timestamp | None = None
    pushes: int = 0
    bad_signatures: int = 0


class FeedHealth(Struct, kw_only=True):
    status: Literal["ok", "failing", "paused", "pending"]
    next_poll_at: Timestamp | None
    last_poll_at: Timestamp | None
    last_result: Literal["ok", "not_modified", "error"] | None
    last_http_status: int | None
    last_duration_ms: float | None
    entries_last_poll: int | None
    events_last_poll: int | None
    consecutive_errors: int
    last_error: str | None
    stories: Annotated[int, Meta(description="stories of this feed tracked")]
    etag: Annotated[str | None, Meta(description="validator in use")]
    last_modified: Annotated[str | None, Meta(description="validator in use")]
    websub: WebSubView


class Feed(Struct, kw_only=True):
    id: str
    url: str
    title: str | None
    interval_seconds: float
    paused: bool
    adaptive: bool
    websub: bool
    health: FeedHealth


class FeedList(Struct):
    feeds: list[Feed]


class Deleted(Struct):
    deleted: str


class PollOutcome(Struct, kw_only=True):
    feed_id: str
    at: Timestamp
    status: Literal["ok", "not_modified", "error"]
    http_status: int | None
    error: str | None
    entries: int
    events: int
    duration_ms: float


class Polled(Struct):
    """The poll's outcome (an error outcome is still a 200: the poll ran)."""

    outcome: PollOutcome
    feed: Feed


class PollRequested(Struct):
    """Web-only process: the poll was requested from the workers and none ended it in time."""

    outcome: None
    feed: Feed


class AuditRecord(Struct, kw_only=True):
    at: Timestamp
    actor: Annotated[str, Meta(description="name of the token used")]
    action: Literal["feed.create", "feed.update", "feed.delete", "feed.poll"]
    feed_id: str
    before: Annotated[
        dict[str, Any] | UnsetType | None, Meta(description="changed fields, old values")
    ] = UNSET
    after: Annotated[
        dict[str, Any] | UnsetType | None, Meta(description="changed fields, new values")
    ] = UNSET
    result: Annotated[
        str | UnsetType, Meta(description="feed.poll only: the poll's status, or requested (202)")
    ] = UNSET


class AuditList(Struct):
    audit: list[AuditRecord]


class Stats(Struct, kw_only=True):
    connected_clients: int
    connected_by_transport: dict[str, int]
    updates_published_total: int
    messages_sent_total: int
    slow_clients_dropped_total: int
    polls_total: dict[str, int]
    window_minutes: int
    updates_published_per_minute: list[dict[str, Any]]
    messages_sent_per_minute: list[dict[str, Any]]
