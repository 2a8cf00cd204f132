"""Word-level diff inside paragraphs a paragraph diff has already found to be replaced.

Only ever run on the few paragraphs of one replace hunk, never on a whole story: difflib over a
whole text is quadratic and can take minutes.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Any

# Words, runs of whitespace and single other characters: joined back they give the exact text.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)

# Above this many tokens per side the token diff could get slow; show the pair as one replace run.
MAX_TOKENS = 5000

# Paragraphs of a hunk less alike than this are shown as removed and added, not as an edit.
MIN_SIMILARITY = 0.5

# How far ahead in the new paragraphs to look for the counterpart of an old one.
PAIR_WINDOW = 8


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _words(text: str) -> list[str]:
    return [token for token in tokens(text) if not token.isspace()]


def similarity(old: str, new: str) -> float:
    """Cheap upper bound of how alike two paragraphs are, by their multisets of words."""
    if old == new:
        return 1.0
    return SequenceMatcher(None, _words(old), _words(new), autojunk=False).quick_ratio()


def pair_paragraphs(old: list[str], new: list[str]) -> list[tuple[int, int]]:
    """In-order pairs (i, j) of old[i] edited into new[j], for paragraphs alike enough.

    Greedy and windowed so a large replace hunk stays linear; unpaired paragraphs are plain
    removals or additions.
    """
    if len(old) == len(new) == 1:
        return [(0, 0)]
    pairs: list[tuple[int, int]] = []
    start = 0
    for i, paragraph in enumerate(old):
        window = range(start, min(len(new), start + PAIR_WINDOW))
        scored = [(similarity(paragraph, new[j]), -j) for j in window]
        if not scored:
            break
        best, negative_j = max(scored)
        if best >= MIN_SIMILARITY:
            pairs.append((i, -negative_j))
            start = -negative_j + 1
    return pairs


def word_runs(old: str, new: str) -> list[dict[str, str]]:
    """Runs {"op", "old", "new"} whose "old" parts join to `old` and "new" parts to `new`."""
    old_tokens, new_tokens = tokens(old), tokens(new)
    if len(old_tokens) > MAX_TOKENS or len(new_tokens) > MAX_TOKENS:
        return [{"op": "replace", "old": old, "new": new}]
    matcher = SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    runs: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        runs.append(
            {"op": op, "old": "".join(old_tokens[i1:i2]), "new": "".join(new_tokens[j1:j2])}
        )
    return runs


def words_for_hunk(
    old: list[str], new: list[str], old_start: int, new_start: int
) -> list[dict[str, Any]]:
    """The "words" member of a replace hunk: one entry per edited paragraph, absolute indexes."""
    return [
        {"old_index": old_start + i, "new_index": new_start + j, "runs": word_runs(old[i], new[j])}
        for i, j in pair_paragraphs(old, new)
    ]
