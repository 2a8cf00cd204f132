"""One-line, human descriptions of a diff or a new story, fit for a push notification."""

from __future__ import annotations

from typing import Any

from liveupdates.models import Snapshot

# Notification bodies get cut by devices anyway; cut ourselves so the cut is at a word.
MAX_LENGTH = 120

_FIELD_PHRASES: tuple[tuple[str, str], ...] = (
    ("title", "Headline changed"),
    ("summary", "Summary changed"),
    ("authors", "Byline changed"),
    ("url", "Link changed"),
    ("published", "Publication time changed"),
)


def _count(n: int, verb: str) -> str:
    return f"{n} paragraph{'' if n == 1 else 's'} {verb}"


def _paragraph_counts(hunks: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(added, updated, removed): an edited paragraph counts once, as updated."""
    added = updated = removed = 0
    for hunk in hunks:
        old, new = len(hunk.get("old", ())), len(hunk.get("new", ()))
        edited = len(hunk["words"]) if "words" in hunk else min(old, new)
        updated += edited
        added += new - edited
        removed += old - edited
    return added, updated, removed


def paragraph_counts(hunks: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(added, updated, removed) paragraphs of a diff's hunks, as the summary counts them."""
    return _paragraph_counts(hunks)


def summarise(d: dict[str, Any]) -> str:
    """E.g. "Headline changed; 2 paragraphs added; 1 paragraph removed"."""
    fields = d.get("fields", {})
    parts = [phrase for name, phrase in _FIELD_PHRASES if name in fields]
    added, updated, removed = _paragraph_counts(d.get("paragraphs", []))
    parts += [
        _count(n, verb)
        for n, verb in ((added, "added"), (updated, "updated"), (removed, "removed"))
        if n
    ]
    if not parts:
        # Only the feed's own update stamp moved: say so rather than claim an edit.
        return "Update time changed" if "updated" in fields else "No visible change"
    return "; ".join(parts)


def _shorten(text: str) -> str:
    if len(text) <= MAX_LENGTH:
        return text
    cut = text[: MAX_LENGTH - 1].rsplit(" ", 1)[0] or text[: MAX_LENGTH - 1]
    return cut + "…"


def summarise_created(snapshot: Snapshot) -> str:
    """The headline of a new story, or its opening words when the feed gives no title."""
    for text in (snapshot.title, snapshot.summary, *snapshot.paragraphs[:1]):
        if text.strip():
            return _shorten(" ".join(text.split()))
    return "New story"
