"""Reading a feed again: entries whose bytes did not change are not parsed, normalised nor hashed
again, and the result is always what a full read of the body gives."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from liveupdates.feeds.entries import (
    _TOKEN,
    EntriesRead,
    EntryMemo,
    entry_keys,
    read_entries,
    split_entries,
)
from liveupdates.feeds.parse import ParsedFeed, parse_feed
from tests.support.stories import Item, bridge_story, rss

HEADERS = {"content-type": "application/rss+xml"}
URL = "https://gazette.example/feed.xml"


def stories(n: int) -> list[Item]:
    return [
        bridge_story(guid=f"g{i}", title=f"Story {i}", link=f"https://gazette.example/n/{i}")
        for i in range(n)
    ]


class CountingParse:
    """The real parse_feed, counting the entries it was given to parse."""

    def __init__(self) -> None:
        self.entries_parsed = 0

    def __call__(self, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
        parsed = parse_feed(body, headers, url)
        self.entries_parsed += len(parsed.entries)
        return parsed


def read(body: bytes, memo: EntryMemo | None, parse: CountingParse | None = None) -> EntriesRead:
    return read_entries(body, HEADERS, URL, "gazette", memo, parse=parse or parse_feed)


def same(a: EntriesRead, b: EntriesRead) -> None:
    assert a.read == b.read
    assert a.total == b.total
    assert a.parsed.title == b.parsed.title and a.parsed.links == b.parsed.links


def test_an_unchanged_body_parses_no_entry_again() -> None:
    body = rss(stories(5))
    first = read(body, None)
    assert first.reused == 0 and first.memo is not None
    counting = CountingParse()
    again = read(body, first.memo, counting)
    assert counting.entries_parsed == 0
    assert again.reused == 5
    same(again, read(body, None))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda s: [s[0].with_(title="Edited"), *s[1:]], id="one edited"),
        pytest.param(lambda s: [bridge_story(guid="new", title="New"), *s], id="one added"),
        pytest.param(lambda s: s[1:], id="one removed"),
        pytest.param(lambda s: list(reversed(s)), id="reordered"),
        pytest.param(lambda s: [*s, s[0]], id="an entry twice"),
    ],
)
def test_only_changed_entries_are_parsed_and_the_result_is_a_full_reads(edit: object) -> None:
    before = stories(4)
    after = edit(before)  # type: ignore[operator]
    memo = read(rss(before), None).memo
    counting = CountingParse()
    got = read(rss(after), memo, counting)
    assert counting.entries_parsed == got.total - got.reused
    assert got.reused == sum(1 for item in after if item in before)
    same(got, read(rss(after), None))


def test_the_memo_holds_only_the_latest_bodys_entries() -> None:
    a, b, c = stories(3)
    memo = read(rss([a, b]), None).memo
    memo = read(rss([b, c]), memo).memo
    assert memo is not None and len(memo.entries) == 2
    # a is back: not in the memo any more, so it is parsed again.
    counting = CountingParse()
    got = read(rss([a, b]), memo, counting)
    assert counting.entries_parsed == 1 and got.reused == 1


def test_a_change_outside_the_entries_reads_everything_again() -> None:
    memo = read(rss(stories(3)), None).memo
    counting = CountingParse()
    got = read(rss(stories(3), title="Harbour Town Gazette (evening)"), memo, counting)
    assert got.reused == 0 and counting.entries_parsed == 3
    assert got.parsed.title == "Harbour Town Gazette (evening)"
    # Another URL or content type is another context too.
    other = read_entries(rss(stories(3)), HEADERS, URL + "?v=2", "gazette", memo)
    assert other.reused == 0


def test_the_same_body_from_another_content_location_resolves_links_against_it() -> None:
    # Content-Location is feedparser's base for relative links: the same bytes served from
    # another place are other links.
    body = rss(stories(2)).replace(b"https://gazette.example/n/", b"n/")
    first = {**HEADERS, "Content-Location": "https://gazette.example/feeds/"}
    moved = {**HEADERS, "Content-Location": "https://mirror.example/harbour/"}
    memo = read_entries(body, first, URL, "gazette", None).memo
    got = read_entries(body, moved, URL, "gazette", memo)
    assert [s.url for s, _ in got.read] == [
        "https://mirror.example/harbour/n/0",
        "https://mirror.example/harbour/n/1",
    ]
    same(got, read_entries(body, moved, URL, "gazette", None))


def with_feed_dates(body: bytes, stamp: str) -> bytes:
    """`body` as a feed that restamps its channel on every change (lastBuildDate, pubDate)."""
    dates = f"<lastBuildDate>{stamp}</lastBuildDate><pubDate>{stamp}</pubDate>"
    return body.replace(b"<description>", dates.encode() + b"<description>", 1)


def test_a_restamped_feed_date_does_not_make_the_entries_parse_again() -> None:
    before = with_feed_dates(rss(stories(4)), "Tue, 24 Nov 2026 08:00:00 GMT")
    memo = read(before, None).memo
    changed = stories(4)
    changed[2] = changed[2].with_(paragraphs=[*changed[2].paragraphs, "A new paragraph."])
    after = with_feed_dates(rss(changed), "Tue, 24 Nov 2026 08:05:00 GMT")
    counting = CountingParse()
    got = read(after, memo, counting)
    assert counting.entries_parsed == 1 and got.reused == 3
    same(got, read(after, None))
    # Any other change to the channel still reads everything again.
    retitled = after.replace(b"Harbour Town Gazette", b"Harbour Town Gazette (late)")
    assert read(retitled, got.memo).reused == 0


def test_a_broken_changed_entry_gives_what_a_full_read_gives() -> None:
    good = rss(stories(3))
    memo = read(good, None).memo
    broken = good.replace(b"<title>Story 1</title>", b"<title>Story 1</titl>")
    same(read(broken, memo), read(broken, None))


def test_markup_inside_cdata_and_comments_does_not_split_entries() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        b"<!-- <item> in a comment -->"
        b"<item><title>A</title><description><![CDATA[<p>an </item> in text</p>]]>"
        b"</description></item>"
        b"<item/>"
        b"<item><title>B</title></item></channel></rss>"
    )
    spans = split_entries(body)
    assert spans is not None
    assert [body[s:e][:12] for s, e in spans] == [b"<item><title", b"<item/>", b"<item><title"]
    assert body[spans[0][0] : spans[0][1]].endswith(b"in text</p>]]></description></item>")


# The scanner's tokens as the plain lazy pattern finds them: each comment, CDATA section and
# processing instruction ends at the first terminator after its start.
LAZY_TOKEN = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
    rb"|<(/?)(?:[A-Za-z_][\w.\-]*:)?(?:item|entry)(?=[\s/>])[^>]*>",
    re.S,
)
PIECES = [
    b"<!--", b"-->", b"-", b"->", b"<![CDATA[", b"]]>", b"]", b"]>", b"<?", b"?>", b"?", b">",
    b"<item>", b"</item>", b"<item/>", b"<atom:entry x='1'>", b"</entry>", b"<items>", b"<",
    b"text", b"\n", b" ",
]  # fmt: skip


@given(st.lists(st.sampled_from(PIECES), max_size=40))
@example([b"<!--", b" -->", b"<item>", b"-->", b"</item>"])
@example([b"<![CDATA[", b"]]>", b"<item/>", b"]]>"])
@example([b"<?", b"?>", b"<item/>", b"?>"])
@example([b"<!--", b"->", b"-->", b"<![CDATA[", b"]", b"]]>", b"<?", b"?", b"?>"])
def test_the_scanner_finds_the_tokens_the_lazy_pattern_finds(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    found = [(m.span(), m.group(1)) for m in _TOKEN.finditer(body)]
    assert found == [(m.span(), m.group(1)) for m in LAZY_TOKEN.finditer(body)]


@pytest.mark.parametrize(
    "body",
    [
        b"<rss><channel><item><item></item></item></channel></rss>",  # nested
        b"<rss><channel><item></channel></rss>",  # unclosed
        b"<rss><channel></item></channel></rss>",  # closed, never opened
        b'<!DOCTYPE rss [<!ENTITY e "<item>">]><rss><channel><item>&e;</item></channel></rss>',
    ],
)
def test_a_body_the_scanner_cannot_split_is_read_in_full(body: bytes) -> None:
    assert split_entries(body) is None
    assert read(body, None).memo is None


def test_entry_keys_name_each_entry_by_its_guid_id_and_link_text() -> None:
    keys = entry_keys(rss(stories(2)))
    assert keys == {
        (b"https://gazette.example/n/0", b"g0"),
        (b"https://gazette.example/n/1", b"g1"),
    }
    # A newer body of the same stories, one of them edited, names them all again.
    edited = stories(3)
    edited[0] = edited[0].with_(paragraphs=["Edited."])
    newer = entry_keys(rss(edited))
    assert keys is not None and newer is not None and keys <= newer
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        b"<entry><id>tag:a,2026:1</id><source><id>tag:b,2026:feed</id></source></entry>"
        b'<entry><source><id>tag:b,2026:feed</id></source><id>tag:a,2026:2</id><link href="x"/>'
        b"</entry></feed>"
    )
    # An entry's key holds the id of its <source> too: the two entries stay apart.
    assert entry_keys(atom) == {
        (b"tag:a,2026:1", b"tag:b,2026:feed"),
        (b"tag:b,2026:feed", b"tag:a,2026:2"),
    }


@pytest.mark.parametrize(
    "body",
    [
        b"<rss><channel><item><title>No guid, no link</title></item></channel></rss>",
        b"<rss><channel><item><guid><![CDATA[g1]]></guid></item></channel></rss>",
        b"<rss><channel><item><item></item></item></channel></rss>",
    ],
)
def test_entry_keys_say_nothing_when_an_entry_cannot_be_named(body: bytes) -> None:
    assert entry_keys(body) is None
