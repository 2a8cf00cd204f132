"""Update events: what subscribers receive when a story is created or changed. Pure code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from liveupdates.diff import diff, summarise, summarise_created
from liveupdates.models import Snapshot, feed_channel, story_channel


def utcnow_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _story_ref(snapshot: Snapshot, version: int) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "feed": snapshot.feed,
        "url": snapshot.url,
        "title": snapshot.title,
        "version": version,
    }


def created_event(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "kind": "created",
        "story": _story_ref(snapshot, 1),
        "summary": summarise_created(snapshot),
        "at": utcnow_iso(),
    }


def updated_event(old: Snapshot, new: Snapshot, old_version: int) -> dict[str, Any]:
    d = diff(old, new, old_version, old_version + 1)
    return {
        "kind": "updated",
        "story": _story_ref(new, old_version + 1),
        "diff": d,
        "summary": summarise(d),
        "at": utcnow_iso(),
    }


def channels_for(snapshot: Snapshot) -> list[str]:
    """Every event of a story goes to the story's own channel and to its feed's channel."""
    return [story_channel(snapshot.id), feed_channel(snapshot.feed)]
