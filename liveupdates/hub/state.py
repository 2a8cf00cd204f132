"""Read-side views over the store: what a channel is, what a story looks like on the wire.

Shared by REST responses and by the WebSocket/SSE `reset` message, so both show the same JSON.
"""

from __future__ import annotations

from typing import Any

from liveupdates.api.models import DEFAULT_FEED_STORIES_LIMIT
from liveupdates.hub.protocol import parse_channel, reset_message
from liveupdates.models import StoredVersion, feed_channel, story_channel
from liveupdates.store.base import Store
from liveupdates.validate import plausible_id


def story_json(stored: StoredVersion) -> dict[str, Any]:
    """Snapshot.to_json() plus the version number."""
    data = stored.snapshot.to_json()
    data["version"] = stored.version
    return data


async def channel_exists(store: Store, channel: str) -> bool:
    """A story channel needs a stored story; a feed channel a configured feed or a log.

    Read-only: an anonymous client asking about an unknown id must leave nothing behind
    (`log_bounds` may create a channel's epoch, so it is not used here).
    """
    kind, ident = parse_channel(channel)
    if not plausible_id(ident):
        return False
    if kind == "story":
        return await store.latest(ident) is not None
    return await feed_exists(store, ident)


async def feed_exists(store: Store, feed_id: str) -> bool:
    """A configured feed, or one whose channel still has a log (a removed feed's history)."""
    if not plausible_id(feed_id):
        return False
    if await store.get_feed(feed_id) is not None:
        return True
    return bool(await store.read_log(feed_channel(feed_id), 0, 1))


async def feed_stories(
    store: Store, feed_id: str, limit: int = DEFAULT_FEED_STORIES_LIMIT
) -> list[dict]:
    return [story_json(v) for v in await store.feed_stories(feed_id, limit)]


async def build_reset(store: Store, channel: str, seq: int) -> dict[str, Any]:
    """The state a reader takes instead of a replay.

    Read AFTER the log position `seq`, so the state is at least as new as seq: an update arriving
    later whose story.version is not above the snapshot's version can be ignored by the client.
    """
    kind, ident = parse_channel(channel)
    if kind == "story":
        stored = await store.latest(ident)
        return reset_message(channel, seq, story_json(stored) if stored else None)
    return reset_message(channel, seq, None, await feed_stories(store, ident))


async def story_document(store: Store, story_id: str) -> dict[str, Any] | None:
    """GET /v1/stories/{id}: the current snapshot with the channel position to subscribe from.

    The position is read first, so `seq` never claims more than the snapshot shows; but only
    once the story is known to exist, since reading a position may create the channel's epoch.
    """
    if not plausible_id(story_id) or await store.latest(story_id) is None:
        return None
    channel = story_channel(story_id)
    bounds = await store.log_bounds(channel)
    stored = await store.latest(story_id)
    if stored is None:
        return None
    data = story_json(stored)
    data.update(channel=channel, seq=bounds.last, epoch=bounds.epoch)
    return data
