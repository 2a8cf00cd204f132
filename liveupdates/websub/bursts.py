"""Which pushes of a burst for one feed need ingesting. Pure, no I/O.

Each push carries the topic's new content, so a later body of the feed that names every entry of
an earlier one (`feeds.entries.covers`) holds each of them in a version at least as new: the
earlier one would only add a version that the later one replaces at once. A hub may instead send
only the changed entries; such bodies name different entries and are all kept. The embedded
path applies the same rule to a push waiting its turn (`FeedScheduler.ingest_pushed`).
"""

from __future__ import annotations

from liveupdates.feeds.entries import Keys, covers, entry_keys
from liveupdates.models import PushedBody


def newest_pushes(pushes: list[PushedBody]) -> list[PushedBody]:
    """The pushes of a batch worth ingesting, in their order: a push is left out when a later
    push of the same feed in the batch names every entry it names. Bodies are scanned only for
    feeds with more than one push in the batch."""
    keys: dict[int, Keys] = {}

    def keys_of(i: int) -> Keys:
        if i not in keys:
            keys[i] = entry_keys(pushes[i].body)
        return keys[i]

    kept: list[PushedBody] = []
    for i, push in enumerate(pushes):
        later = [j for j in range(i + 1, len(pushes)) if pushes[j].feed_id == push.feed_id]
        if not any(covers(keys_of(j), keys_of(i)) for j in later):
            kept.append(push)
    return kept
