"""What is worth a notification: pure rules over the events the channel logs hold.

A story channel's update is *major* when the headline changed or at least one paragraph was
added; a new story is always major. On a feed channel only `created` is major. A device following
with notify "all" is told of every event, with "major" of major ones only. A new story and a
changed headline are urgent (Web Push `Urgency: high`, APNs priority 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from liveupdates.diff.summary import paragraph_counts
from liveupdates.models import Notify


@dataclass(frozen=True, slots=True)
class Change:
    """One logged event, as the dispatcher needs it."""

    channel: str
    seq: int
    epoch: str
    kind: Literal["created", "updated"]
    story_id: str
    version: int
    title: str
    url: str
    summary: str
    major: bool
    urgent: bool


def change_from_event(channel: str, seq: int, epoch: str, event: dict[str, Any]) -> Change | None:
    """The change an event describes; None for an event that is not about a story's content."""
    kind = event.get("kind")
    story = event.get("story")
    if kind not in ("created", "updated") or not isinstance(story, dict):
        return None
    story_id, version = story.get("id"), story.get("version")
    if not isinstance(story_id, str) or not isinstance(version, int):
        return None
    if kind == "created":
        major = urgent = True
    else:
        raw = event.get("diff")
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        headline = "title" in (d.get("fields") or {})
        added, _, _ = paragraph_counts(d.get("paragraphs") or [])
        # On a feed's channel only new stories are major; a story's own followers hear of more.
        urgent = headline
        major = (headline or added > 0) and channel.startswith("story:")
    return Change(
        channel=channel,
        seq=seq,
        epoch=epoch,
        kind=kind,
        story_id=story_id,
        version=version,
        title=str(story.get("title") or ""),
        url=str(story.get("url") or ""),
        summary=str(event.get("summary") or ""),
        major=major,
        urgent=urgent,
    )


def wants(notify: Notify, change: Change) -> bool:
    return notify == "all" or change.major
