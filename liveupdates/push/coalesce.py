"""Coalescing: at most one notification per device and story every `push.min_gap` seconds, and
nothing dropped. Pure functions over the per-(device, story) state the store keeps as JSON.

State fields:
    v      highest story version merged (a change already merged, e.g. read again after a
           restart or through the story's and the feed's channel both, is not merged twice)
    n      changes waiting to be sent (0: nothing pending)
    gen    bumped by every merge; a send covers the changes up to the gen it read
    due    unix time the pending changes are sent (None: nothing pending)
    last   unix time of the last successful send (None: never)
    tries  failed sends of what is pending now
    item   the latest pending change: channel, seq, epoch, story id, title, url
    notes  [[gen, one-line summary], ...] of the pending changes (the last MAX_NOTES)
    created, urgent   whether a pending change was a new story / urgent
"""

from __future__ import annotations

from typing import Any

from liveupdates.push.model import Notification
from liveupdates.push.rules import Change

MAX_NOTES = 10
# The per-(device, story) state as the store keeps it (JSON).
State = dict[str, Any]
# Longest body sent at first; a provider's "too large" halves it.
BODY_LIMIT = 180
MIN_BODY = 16


def merge(state: State | None, change: Change, now: float, min_gap: float) -> State | None:
    """The state after `change`; the same state when it was merged already."""
    old: State = state or {"v": 0, "n": 0, "gen": 0, "due": None, "last": None, "tries": 0}
    if change.version <= int(old.get("v", 0)):
        return state
    new = dict(old)
    pending = int(old.get("n", 0)) > 0
    new["v"] = change.version
    new["gen"] = int(old.get("gen", 0)) + 1
    new["n"] = int(old.get("n", 0)) + 1
    new["item"] = {
        "channel": change.channel,
        "seq": change.seq,
        "epoch": change.epoch,
        "story_id": change.story_id,
        "title": change.title,
        "url": change.url,
    }
    notes = list(old.get("notes") or []) if pending else []
    notes.append([new["gen"], change.summary])
    new["notes"] = notes[-MAX_NOTES:]
    new["created"] = (bool(old.get("created")) and pending) or change.kind == "created"
    new["urgent"] = (bool(old.get("urgent")) and pending) or change.urgent
    if not pending:
        last = old.get("last")
        new["due"] = now if last is None else max(now, float(last) + min_gap)
        new["tries"] = 0
    return new


def _sent_part(state: State, taken: State) -> State:
    """`state` without what `taken` (the state a send read) covered."""
    new = dict(state)
    left = int(state.get("n", 0)) - int(taken.get("n", 0))
    if int(state.get("gen", 0)) == int(taken.get("gen", 0)) or left <= 0:
        new.update(n=0, due=None, notes=[], created=False, urgent=False, tries=0)
        return new
    new["n"] = left
    new["notes"] = [n for n in state.get("notes") or [] if n[0] > int(taken.get("gen", 0))]
    new["tries"] = 0
    return new


def after_sent(state: State | None, taken: State, now: float, min_gap: float) -> State | None:
    """The send of `taken` succeeded: what arrived meanwhile waits for the gap to end."""
    if state is None:
        return None
    new = _sent_part(state, taken)
    new["last"] = now
    if new["n"]:
        new["due"] = now + min_gap
    else:
        # Nothing pending: the next merge writes a new item, and every follower of a breaking
        # story keeps this state (as JSON, written now and read at the next merge).
        new.pop("item", None)
    return new


def after_failed(state: State | None, taken: State, now: float) -> State | None:
    """The send of `taken` failed for good: it is dropped (and counted), newer changes stay."""
    if state is None:
        return None
    new = _sent_part(state, taken)
    if new["n"]:
        new["due"] = now
    return new


def after_retry(state: State | None, taken: State, now: float, delay: float) -> State | None:
    """The send of `taken` is to be tried again after `delay` seconds."""
    if state is None:
        return None
    new = dict(state)
    new["tries"] = int(taken.get("tries", 0)) + 1
    new["due"] = now + delay
    return new


def retry_delay(tries: int, retry_after: float | None) -> float:
    """Seconds before the next try: the service's Retry-After, else 2, 4, 8 ... up to 5 minutes."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), 3600.0)
    return float(min(2 ** (tries + 1), 300))


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: max(1, limit - 1)]
    word = head.rsplit(" ", 1)[0]
    return (word if len(word) >= limit // 2 else head).rstrip(" ;,:") + "…"


def body_text(state: State) -> str:
    notes = [str(n[1]) for n in state.get("notes") or [] if str(n[1]).strip()]
    n = int(state.get("n", 0))
    if n <= 1 or not notes:
        return notes[-1] if notes else "Story updated"
    distinct = list(dict.fromkeys(notes))
    return f"{n} updates: " + "; ".join(distinct)


def notification(state: State, *, ttl: int, body_limit: int = BODY_LIMIT) -> Notification:
    """The notification for what `state` has pending."""
    item: dict[str, Any] = state.get("item") or {}
    title = str(item.get("title") or "Story updated")
    return Notification(
        channel=str(item.get("channel", "")),
        seq=int(item.get("seq", 0)),
        epoch=str(item.get("epoch", "")),
        kind="created" if state.get("created") else "updated",
        story_id=str(item.get("story_id", "")),
        story_title=title,
        story_url=str(item.get("url", "")),
        title=cut(title, 120),
        body=cut(body_text(state), body_limit),
        updates=max(1, int(state.get("n", 1))),
        urgency="high" if state.get("urgent") else "normal",
        ttl=ttl,
    )
