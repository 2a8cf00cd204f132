"""Diff two snapshots of a story and apply such a diff: pure functions over JSON-ready data.

A diff must reproduce the new snapshot exactly when applied to the old one, and must refuse to
apply to any other snapshot, so a client that missed a version notices instead of showing garbage.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from liveupdates.diff.sequence import opcodes
from liveupdates.diff.words import word_runs, words_for_hunk
from liveupdates.models import STORY_FIELDS, Snapshot

# Every reader-visible field except the paragraphs, which get hunks instead of old/new values.
DIFF_FIELDS: tuple[str, ...] = tuple(name for name in STORY_FIELDS if name != "paragraphs")

_OPS: frozenset[str] = frozenset({"insert", "delete", "replace"})

# Fields whose change also carries word runs, so no client has to compute a word diff itself.
WORD_FIELDS: frozenset[str] = frozenset({"title"})


def _json_value(snapshot: Snapshot, name: str) -> Any:
    value = getattr(snapshot, name)
    return list(value) if isinstance(value, tuple) else value


def _field_changes(old: Snapshot, new: Snapshot) -> dict[str, dict[str, Any]]:
    changes: dict[str, dict[str, Any]] = {}
    for name in DIFF_FIELDS:
        before, after = _json_value(old, name), _json_value(new, name)
        if before != after:
            changes[name] = {"old": before, "new": after}
            if name in WORD_FIELDS:
                changes[name]["words"] = word_runs(before, after)
    return changes


def _paragraph_hunks(old: tuple[str, ...], new: tuple[str, ...]) -> list[dict[str, Any]]:
    hunks: list[dict[str, Any]] = []
    for op, i1, i2, j1, j2 in opcodes(old, new):
        if op == "equal":
            continue
        hunk: dict[str, Any] = {
            "op": op,
            "old_start": i1,
            "old_end": i2,
            "new_start": j1,
            "new_end": j2,
            "old": list(old[i1:i2]),
            "new": list(new[j1:j2]),
        }
        if op == "replace":
            hunk["words"] = words_for_hunk(hunk["old"], hunk["new"], i1, j1)
        hunks.append(hunk)
    return hunks


def diff(old: Snapshot, new: Snapshot, from_version: int, to_version: int) -> dict[str, Any]:
    """What changed from `old` (version `from_version`) to `new` (version `to_version`).

    Returns {"from_version", "to_version", "fields", "paragraphs"}; see docs/protocol.md.
    """
    return {
        "from_version": from_version,
        "to_version": to_version,
        "fields": _field_changes(old, new),
        "paragraphs": _paragraph_hunks(old.paragraphs, new.paragraphs),
    }


def _checked_int(hunk: dict[str, Any], key: str) -> int:
    value = hunk.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"diff hunk has a bad {key!r}: {value!r}")
    return value


def _checked_list(hunk: dict[str, Any], key: str, length: int) -> list[str]:
    value = hunk.get(key)
    if not isinstance(value, list) or len(value) != length:
        raise ValueError(f"diff hunk {key!r} does not match its range")
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"diff hunk {key!r} holds a non-string paragraph")
    return value


def _apply_paragraphs(old: tuple[str, ...], hunks: Any) -> tuple[str, ...]:
    if not isinstance(hunks, list):
        raise ValueError("diff 'paragraphs' must be a list of hunks")
    result: list[str] = []
    position = 0  # next old paragraph not yet copied
    for hunk in hunks:
        if not isinstance(hunk, dict) or hunk.get("op") not in _OPS:
            raise ValueError(f"not a diff hunk: {hunk!r}")
        old_start, old_end = _checked_int(hunk, "old_start"), _checked_int(hunk, "old_end")
        new_start, new_end = _checked_int(hunk, "new_start"), _checked_int(hunk, "new_end")
        if old_start < position or old_end < old_start or old_end > len(old):
            raise ValueError("diff hunks overlap, are out of order or exceed the story")
        if new_end < new_start:
            raise ValueError("diff hunk ends before it starts")
        removed = _checked_list(hunk, "old", old_end - old_start)
        added = _checked_list(hunk, "new", new_end - new_start)
        result.extend(old[position:old_start])
        if new_start != len(result):
            raise ValueError("diff hunk new_start does not match the paragraphs before it")
        if list(old[old_start:old_end]) != removed:
            raise ValueError("diff does not apply: old paragraphs differ from this snapshot")
        result.extend(added)
        position = old_end
    result.extend(old[position:])
    return tuple(result)


def _field_value(name: str, value: Any) -> Any:
    if name == "authors":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("diff 'authors' must be a list of strings")
        return tuple(value)
    nullable = name in ("published", "updated")
    if not isinstance(value, str) and not (nullable and value is None):
        raise ValueError(f"diff field {name!r} has a bad value: {value!r}")
    return value


def apply(old: Snapshot, d: dict[str, Any]) -> Snapshot:
    """The snapshot `d` leads to from `old`; ValueError if `d` was not made from `old`.

    Accepts a diff as returned by `diff` or after a JSON round trip. Word runs ("words") are for
    display only: applying never needs them, so they are not checked.
    """
    fields = d.get("fields") if isinstance(d, dict) else None
    if not isinstance(fields, dict):
        raise ValueError("not a diff: missing 'fields'")
    changes: dict[str, Any] = {}
    for name, change in fields.items():
        if name not in DIFF_FIELDS or not isinstance(change, dict):
            raise ValueError(f"diff changes an unknown field: {name!r}")
        if "old" not in change or "new" not in change:
            raise ValueError(f"diff field {name!r} lacks 'old' or 'new'")
        if _field_value(name, change["old"]) != getattr(old, name):
            raise ValueError(f"diff does not apply: {name!r} differs from this snapshot")
        changes[name] = _field_value(name, change["new"])
    changes["paragraphs"] = _apply_paragraphs(old.paragraphs, d.get("paragraphs", []))
    return replace(old, **changes)
