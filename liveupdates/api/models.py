"""The REST routes' requests (query and path parameters) and responses, as msgspec Structs.

Numbers carry their bounds (`Meta(ge=..., le=...)`) and strings their lengths; `params.parse`
reads a request's parameters into these models with the edge checks of liveupdates/validate.py
(ASCII digits, 64-bit, no lone surrogates) and the models' own constraints.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from liveupdates.validate import MAX_INT

DEFAULT_UPDATES_LIMIT = 100
MAX_UPDATES_LIMIT = 1000
DEFAULT_FEEDS_LIMIT = 50
MAX_FEEDS_LIMIT = 200
# Most stories a feed reset or GET /v1/feeds/{id}/stories returns (hub/state.py uses it too).
DEFAULT_FEED_STORIES_LIMIT = 100
MAX_FEED_STORIES_LIMIT = 1000
MAX_CHANNEL_LENGTH = 512  # the WebSocket protocol's limit too (hub/protocol.py)
MAX_EPOCH_LENGTH = 128
# A cursor is the last feed id of a page, base64url without padding: opaque to clients, so the
# order key can change later without breaking them. Feed ids are short; 344 characters hold 256 bytes.
MAX_CURSOR_LENGTH = 344
MAX_URL_LENGTH = 4096

Seq = Annotated[int, Meta(ge=0, le=MAX_INT, description="position in a channel's log (0: empty)")]
Position = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_INT,
        description="the last seq the client has applied (ASCII digits, below 2^63)",
    ),
]
Epoch = Annotated[
    str,
    Meta(
        max_length=MAX_EPOCH_LENGTH,
        description="the log's epoch; changes only when the server's log was lost",
    ),
]
Channel = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_CHANNEL_LENGTH,
        pattern="^(story|feed):.+$",
        description="story:<story id> or feed:<feed id>",
        examples=["story:k3v7q2mxa4pt6hne", "feed:harbour-times"],
    ),
]
Version = Annotated[int, Meta(ge=1, le=MAX_INT, description="version number, from 1")]
Timestamp = Annotated[str, Meta(description="UTC, ISO 8601 (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")]


# -- requests -----------------------------------------------------------------------------------


class StoryByUrlQuery(Struct, kw_only=True):
    url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_URL_LENGTH,
            # Not blank. Spelled out rather than \S, which Python (msgspec) and ECMA (clients,
            # schema tools) read differently for \x1c-\x1f.
            pattern=r"[^ \t\n\r\f\v]",
            description="the article's link; canonicalised (tracking parameters dropped) first",
        ),
    ]


class UpdatesQuery(Struct, kw_only=True):
    since: Position = 0
    epoch: Epoch | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_UPDATES_LIMIT)] = DEFAULT_UPDATES_LIMIT


class VersionPath(Struct, kw_only=True):
    version: Version


class FeedStoriesQuery(Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=MAX_FEED_STORIES_LIMIT)] = DEFAULT_FEED_STORIES_LIMIT


class FeedsQuery(Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=MAX_FEEDS_LIMIT)] = DEFAULT_FEEDS_LIMIT
    cursor: (
        Annotated[
            str,
            Meta(
                max_length=MAX_CURSOR_LENGTH,
                pattern="^[A-Za-z0-9_-]+$",
                description="next_cursor of the previous page",
            ),
        ]
        | None
    ) = None


class SSEQuery(Struct, kw_only=True):
    channel: Channel
    since: Position | None = None
    epoch: Epoch | None = None


# -- responses ----------------------------------------------------------------------------------


class ErrorDetail(Struct):
    code: Annotated[str, Meta(examples=["bad_request", "not_found"])]
    message: str


class Error(Struct):
    """Every 4xx and 5xx answer of the public REST routes."""

    error: ErrorDetail


class StorySnapshot(Struct, kw_only=True):
    """One version of a story, as a reader sees it (docs/protocol.md, Story snapshots)."""

    id: str
    feed: str
    url: Annotated[str, Meta(description='canonical http(s) link, or ""')]
    title: str
    summary: str
    authors: list[str]
    published: Timestamp | None
    updated: Timestamp | None
    paragraphs: list[str]
    version: Version


class StoryDocument(StorySnapshot, kw_only=True):
    """The current snapshot and where its channel stands: subscribe with since=seq, epoch."""

    channel: Channel
    seq: Seq
    epoch: Epoch


class VersionDocument(StorySnapshot, kw_only=True):
    at: Timestamp


class WordRun(Struct):
    op: Literal["equal", "insert", "delete", "replace"]
    old: str
    new: str


class WordPair(Struct):
    old_index: Annotated[int, Meta(ge=0)]
    new_index: Annotated[int, Meta(ge=0)]
    runs: list[WordRun]


class FieldChange(Struct, kw_only=True):
    old: Any
    new: Any
    words: list[WordRun] | UnsetType = UNSET


class Hunk(Struct, kw_only=True):
    op: Literal["insert", "delete", "replace"]
    old_start: Annotated[int, Meta(ge=0)]
    old_end: Annotated[int, Meta(ge=0)]
    new_start: Annotated[int, Meta(ge=0)]
    new_end: Annotated[int, Meta(ge=0)]
    old: list[str]
    new: list[str]
    words: list[WordPair] | UnsetType = UNSET


class Diff(Struct):
    """From one version of a story to the next (docs/protocol.md, Diff format)."""

    from_version: Version
    to_version: Version
    fields: dict[str, FieldChange]
    paragraphs: list[Hunk]


class StoryRef(Struct):
    id: str
    feed: str
    url: str
    title: str
    version: Version


class Event(Struct, kw_only=True):
    """What happened to a story: created (no diff) or updated (apply the diff)."""

    kind: Literal["created", "updated"]
    story: StoryRef
    diff: Diff | UnsetType = UNSET
    summary: Annotated[str, Meta(description="one line, e.g. '1 paragraph added'")]
    at: Timestamp


class Update(Struct, tag_field="type", tag="update"):
    """One entry of a channel's log."""

    channel: Channel
    seq: Annotated[int, Meta(ge=1, le=MAX_INT)]
    event: Event


class Reset(Struct, tag_field="type", tag="reset", kw_only=True):
    """The position cannot be replayed: take this state and carry on after seq."""

    channel: Channel
    seq: Seq
    snapshot: StorySnapshot | None
    stories: list[StorySnapshot] | UnsetType = UNSET


class UpdatesPage(Struct, kw_only=True):
    """Updates after `since`; `recovered: false` with a `reset` when they cannot all be given."""

    channel: Channel
    seq: Seq
    epoch: Epoch
    updates: list[Update]
    recovered: bool
    more: Annotated[bool, Meta(description="more updates follow: ask again with since=last seq")]
    reset: Reset | UnsetType = UNSET


class FeedStories(Struct):
    feed: str
    stories: list[StorySnapshot]


class FeedSummary(Struct):
    id: str
    title: str
    link: Annotated[str | None, Meta(description="the publisher's site (the feed's origin)")]
    stories: Annotated[int, Meta(ge=0)]
    last_update: Timestamp | None
    channel: Channel


class FeedsPage(Struct):
    feeds: list[FeedSummary]
    next_cursor: Annotated[
        str | None, Meta(description="pass as ?cursor= for the next page; null on the last")
    ]


class Health(Struct, kw_only=True):
    status: Literal["ok", "unavailable", "shutting_down"]
    store: Literal["ok", "down"]
    bus: Literal["ok", "down"]
    connections: Annotated[int, Meta(ge=0)]
    channels: Annotated[int, Meta(ge=0)]
    reason: str | UnsetType = UNSET
