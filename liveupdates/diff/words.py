"""Word-level diff inside paragraphs a paragraph diff has already found to be replaced.

Only ever run on the few paragraphs of one replace hunk, never on a whole story: difflib over a
whole text is quadratic and can take minutes.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from liveupdates.diff.sequence import opcodes

# Words, runs of whitespace and single other characters: joined back they give the exact text.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)

# Above this many tokens per side the token diff could get slow; show the pair as one replace run.
MAX_TOKENS = 5000

# Paragraphs of a hunk less alike than this are shown as removed and added, not as an edit.
MIN_SIMILARITY = 0.5

# How far ahead in the new paragraphs to look for the counterpart of an old one.
PAIR_WINDOW = 8

# A replace hunk with more paragraphs than this on both sides is a rewrite, not an edit: word
# diffs of hundreds of pairs would cost a second and highlight nothing a reader can follow.
MAX_PAIRED_PARAGRAPHS = 200


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _word_counts(text: str) -> Counter[str]:
    return Counter(token for token in tokens(text) if not token.isspace())


def _similarity(old: Counter[str], new: Counter[str]) -> float:
    """How alike two paragraphs are by their multisets of words, 0..1 (difflib's quick_ratio)."""
    total = old.total() + new.total()
    return 2 * (old & new).total() / total if total else 1.0


def pair_paragraphs(old: list[str], new: list[str]) -> list[tuple[int, int]]:
    """In-order pairs (i, j) of old[i] edited into new[j], for paragraphs alike enough.

    Greedy and windowed so a large replace hunk stays linear; unpaired paragraphs are plain
    removals or additions. A hunk of one old and one new paragraph is always an edit.
    """
    if len(old) == len(new) == 1:
        return [(0, 0)]
    new_counts: dict[int, Counter[str]] = {}  # counted lazily, once per paragraph

    def counts(j: int) -> Counter[str]:
        if j not in new_counts:
            new_counts[j] = _word_counts(new[j])
        return new_counts[j]

    pairs: list[tuple[int, int]] = []
    start = 0
    for i, paragraph in enumerate(old):
        if start >= len(new):
            break
        old_counts = _word_counts(paragraph)
        # The paragraph in the same place is the usual counterpart: take it without a search.
        if _similarity(old_counts, counts(start)) >= MIN_SIMILARITY:
            pairs.append((i, start))
            start += 1
            continue
        window = range(start + 1, min(len(new), start + PAIR_WINDOW))
        scored = [(_similarity(old_counts, counts(j)), -j) for j in window]
        if scored and max(scored)[0] >= MIN_SIMILARITY:
            j = -max(scored)[1]
            pairs.append((i, j))
            start = j + 1
    return pairs


def word_runs(old: str, new: str) -> list[dict[str, str]]:
    """Runs {"op", "old", "new"} whose "old" parts join to `old` and "new" parts to `new`."""
    old_tokens, new_tokens = tokens(old), tokens(new)
    if len(old_tokens) > MAX_TOKENS or len(new_tokens) > MAX_TOKENS:
        return [{"op": "replace", "old": old, "new": new}]
    runs: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in opcodes(old_tokens, new_tokens):
        runs.append(
            {"op": op, "old": "".join(old_tokens[i1:i2]), "new": "".join(new_tokens[j1:j2])}
        )
    return runs


def words_for_hunk(
    old: list[str], new: list[str], old_start: int, new_start: int
) -> list[dict[str, Any]]:
    """The "words" member of a replace hunk: one entry per edited paragraph, absolute indexes."""
    if min(len(old), len(new)) > MAX_PAIRED_PARAGRAPHS:
        return []
    return [
        {"old_index": old_start + i, "new_index": new_start + j, "runs": word_runs(old[i], new[j])}
        for i, j in pair_paragraphs(old, new)
    ]
