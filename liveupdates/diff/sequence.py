"""Opcodes between two sequences (paragraphs or word tokens) with a bound on difflib's worst case.

SequenceMatcher without autojunk gives the smallest, most readable hunks, but on sequences full of
one repeated element ("Advertisement" paragraphs, space tokens) it can take seconds to minutes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from difflib import SequenceMatcher

Opcode = tuple[str, int, int, int, int]

# Above this sum of old x new occurrence counts, repeated elements may no longer start a match.
MAX_REPEAT_WORK = 10_000

# In that case, elements seen more often than this in the new sequence stop anchoring matches
# (they still extend matches found around them, so they rarely show up as changes).
MAX_ANCHOR_REPEATS = 4


def opcodes(old: Sequence[Hashable], new: Sequence[Hashable]) -> list[Opcode]:
    """difflib-style opcodes covering both sequences, "equal" runs included."""
    # Most edits touch a small part: strip the untouched head and tail before difflib sees them.
    limit = min(len(old), len(new))
    head = 0
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old_middle, new_middle = old[head : len(old) - tail], new[head : len(new) - tail]

    result: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    if old_middle or new_middle:
        old_counts, new_counts = Counter(old_middle), Counter(new_middle)
        work = sum(old_counts[item] * count for item, count in new_counts.items())
        popular = (
            {item for item, count in new_counts.items() if count > MAX_ANCHOR_REPEATS}
            if work > MAX_REPEAT_WORK
            else set()
        )
        matcher = SequenceMatcher(
            popular.__contains__ if popular else None, old_middle, new_middle, autojunk=False
        )
        result += [
            (op, i1 + head, i2 + head, j1 + head, j2 + head)
            for op, i1, i2, j1, j2 in matcher.get_opcodes()
        ]
    if tail:
        result.append(("equal", len(old) - tail, len(old), len(new) - tail, len(new)))
    return result
