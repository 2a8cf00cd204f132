"""Reading a feed body again, paying only for the entries whose bytes changed. Pure, no I/O.

Most polls that fetch a body (a 200, or a WebSub push) change one story of many: a live blog gains
a paragraph, the other entries come back byte for byte. `read_entries` splits the body into its
`<item>`/`<entry>` elements and the rest (the skeleton: the XML declaration, the channel's own
elements, namespaces, anything but whitespace between and around the entries). It remembers, per
feed, the normalised snapshot and content hash of every entry by a digest of the entry's raw bytes
(`EntryMemo`). On the next body, if the skeleton (but for its feed-level dates, which most feeds
restamp on every change), the URL and the headers feedparser reads (content type, Content-Location,
Content-Language) are the same, the entries whose bytes are known are not parsed, normalised nor
hashed again: feedparser parses a reduced document (the new skeleton with only the new or changed
entries in place), and the known entries come from the memo, in the body's order.

Anything unusual takes the full path, so the result is always what a full parse gives:
- a body the scanner cannot split with certainty (an entity declaration, nested or unbalanced
  entry tags, a UTF-16 body where the ASCII tag names do not appear);
- a full parse that found a different number of entries than the scanner, or a broken document;
- a reduced parse that is broken or finds a different number of entries than it was given.
A full parse makes a new memo from the entries of that body only, so the memo never holds
entries the feed no longer has.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from liveupdates.feeds.normalise import content_hash, normalise_entry
from liveupdates.feeds.parse import ParsedFeed, parse_feed
from liveupdates.models import Snapshot

# A comment, a CDATA section or a processing instruction (their text is skipped), or a start,
# end or empty tag of an RSS item or an Atom entry (with a namespace prefix or none). Each section
# runs to the first `-->`, `]]>` or `?>` after its start, as `<!--.*?-->` (re.S) would; written
# as runs of characters that cannot start the terminator, because the lazy `.*?` steps through a
# CDATA body one character at a time (160 µs for a 23 KB feed whose content is CDATA, 23 now).
_TOKEN = re.compile(
    rb"<!--[^-]*(?:-(?!->)[^-]*)*-->"
    rb"|<!\[CDATA\[[^\]]*(?:\](?!\]>)[^\]]*)*\]\]>"
    rb"|<\?[^?]*(?:\?(?!>)[^?]*)*\?>"
    rb"|<(/?)(?:[A-Za-z_][\w.\-]*:)?(?:item|entry)(?=[\s/>])[^>]*>"
)

# A feed-level date element of the skeleton and its text (the text alone, no markup inside).
# Most feeds restamp it (RSS lastBuildDate / pubDate, Atom updated) whenever any entry changes, so
# hashed it would make every changed body miss the memo. Nothing in an entry depends on it, and
# the parsed feed-level fields always come from the new body's own skeleton.
_FEED_DATE = re.compile(
    rb"(<((?:[A-Za-z_][\w.\-]*:)?(?:lastBuildDate|pubDate|updated|modified|date))(?:\s[^>]*)?>)"
    rb"[^<]*(</\2\s*>)"
)
# An element that names an entry (RSS guid and link, Atom id) with plain text: the text alone, no
# CDATA nor markup inside (`entry_keys` gives up on an entry without one).
_ENTRY_KEY = re.compile(rb"<((?:[A-Za-z_][\w.\-]*:)?(?:guid|id|link))(?:\s[^>]*)?>([^<]*)</\1\s*>")
# The response headers feedparser reads: the charset, the base for relative links, the language.
_CONTEXT_HEADERS = ("content-type", "content-location", "content-language")

Read = tuple[Snapshot, str]  # a snapshot and its content hash
Parse = Callable[[bytes, Mapping[str, str], str], ParsedFeed]


@dataclass(frozen=True, slots=True)
class EntryMemo:
    """What one body's entries read as, keyed by a digest of each entry's raw bytes; valid for
    bodies with the same `context` (skeleton but its feed-level dates, URL, feed, and the headers
    feedparser reads: content type, Content-Location, Content-Language). An entry that normalised
    to nothing (no usable content) is remembered as None."""

    context: bytes
    entries: dict[bytes, Read | None] = field(default_factory=dict)


@dataclass(slots=True)
class EntriesRead:
    """One body, read. `parsed` is the document feedparser saw: the whole body, or on the
    reduced path the skeleton with only the changed entries (its feed-level fields, links
    included, are the body's; its `entries` are not all of them: `total` counts those).
    `reused`: entries taken from the memo, not parsed, normalised nor hashed again."""

    parsed: ParsedFeed
    read: list[Read]
    total: int
    reused: int = 0
    memo: EntryMemo | None = None


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def split_entries(body: bytes) -> list[tuple[int, int]] | None:
    """The (start, end) byte spans of the body's top-level entry elements, or None when the body
    cannot be split with certainty."""
    if b"<!ENTITY" in body:
        return None
    spans: list[tuple[int, int]] = []
    start = -1
    for match in _TOKEN.finditer(body):
        closing = match.group(1)
        if closing is None:
            continue  # a comment, CDATA or PI: its text is not markup
        if closing:
            if start < 0:
                return None
            spans.append((start, match.end()))
            start = -1
        elif start >= 0:
            return None  # an entry inside an entry
        elif match.group(0).endswith(b"/>"):
            spans.append((match.start(), match.end()))
        else:
            start = match.start()
    return None if start >= 0 else spans


Keys = frozenset[tuple[bytes, ...]] | None


def entry_keys(body: bytes) -> Keys:
    """What names each of the body's entries: the text of every guid, id and link element inside
    it, in order (an Atom entry's `<source>` has an id of its own: both are in its key). None
    when the body cannot be split with certainty or an entry has no such element: then nothing
    can be said about which entries the body holds."""
    spans = split_entries(body)
    if spans is None:
        return None
    keys: set[tuple[bytes, ...]] = set()
    for start, end in spans:
        key = tuple(m.group(2).strip() for m in _ENTRY_KEY.finditer(body, start, end))
        if not key:
            return None
        keys.add(key)
    return frozenset(keys)


def covers(newer: Keys, older: Keys) -> bool:
    """Whether a body with entry keys `newer` names every entry of one with `older` (both from
    `entry_keys`; None says nothing, so nothing is covered)."""
    return newer is not None and older is not None and older <= newer


def _context(
    body: bytes, spans: list[tuple[int, int]], headers: Mapping[str, str], url: str, feed_id: str
) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    prev = 0
    for start, end in spans:
        gap = body[prev:start]
        # Whitespace between two entries means nothing (and grows as entries are added).
        if prev == 0 or gap.strip():
            h.update(_FEED_DATE.sub(rb"\1\3", gap))
            h.update(b"\0")
        prev = end
    h.update(_FEED_DATE.sub(rb"\1\3", body[prev:]))
    lower = {k.lower(): v for k, v in headers.items()}
    for part in (url, feed_id, *(lower.get(name, "") for name in _CONTEXT_HEADERS)):
        h.update(b"\0" + part.encode("utf-8", "surrogatepass"))
    return h.digest()


def _normalised(entry: Any, feed_id: str) -> Read | None:
    snapshot = normalise_entry(entry, feed_id)
    return (snapshot, content_hash(snapshot)) if snapshot is not None else None


def read_entries(
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    feed_id: str,
    memo: EntryMemo | None,
    *,
    parse: Parse = parse_feed,
) -> EntriesRead:
    """Parse `body` and normalise its entries, reusing `memo` (the previous body's) where the
    entries' bytes did not change. The result's `memo` is the one to pass next time (None when
    this body could not be remembered)."""
    spans = split_entries(body)
    context = _context(body, spans, headers, url, feed_id) if spans is not None else b""
    if spans is not None and memo is not None and memo.context == context:
        reduced = _reduced(body, spans, headers, url, feed_id, memo, parse)
        if reduced is not None:
            return reduced
    return _full(body, spans, context, headers, url, feed_id, parse)


def _full(
    body: bytes,
    spans: list[tuple[int, int]] | None,
    context: bytes,
    headers: Mapping[str, str],
    url: str,
    feed_id: str,
    parse: Parse,
) -> EntriesRead:
    parsed = parse(body, headers, url)
    if parsed.error:
        return EntriesRead(parsed, [], 0)
    reads = [_normalised(e, feed_id) for e in parsed.entries]
    memo = None
    if spans is not None and not parsed.broken and len(spans) == len(reads):
        keys = [_digest(body[s:e]) for s, e in spans]
        memo = EntryMemo(context, dict(zip(keys, reads, strict=True)))
    read = [r for r in reads if r is not None]
    return EntriesRead(parsed, read, len(parsed.entries), 0, memo)


def _reduced(
    body: bytes,
    spans: list[tuple[int, int]],
    headers: Mapping[str, str],
    url: str,
    feed_id: str,
    memo: EntryMemo,
    parse: Parse,
) -> EntriesRead | None:
    keys = [_digest(body[s:e]) for s, e in spans]
    parts: list[bytes] = []
    prev = 0
    fresh = 0
    for (start, end), key in zip(spans, keys, strict=True):
        parts.append(body[prev:start])
        if key not in memo.entries:
            parts.append(body[start:end])
            fresh += 1
        prev = end
    parts.append(body[prev:])
    parsed = parse(b"".join(parts), headers, url)
    if parsed.error or parsed.broken or len(parsed.entries) != fresh:
        return None
    new = iter([_normalised(e, feed_id) for e in parsed.entries])
    entries: dict[bytes, Read | None] = {}
    for key in keys:
        entries[key] = memo.entries[key] if key in memo.entries else next(new)
    read = [entries[k] for k in keys]
    return EntriesRead(
        parsed,
        [r for r in read if r is not None],
        len(keys),
        len(keys) - fresh,
        EntryMemo(memo.context, entries),
    )
