"""Normalisation: what feedparser gives us becomes the story a reader sees, and nothing else."""

from __future__ import annotations

import io
import time
from typing import Any

import feedparser
import pytest

from liveupdates.diff.summary import summarise_created
from liveupdates.feeds.normalise import content_hash, html_paragraphs, normalise_entry
from liveupdates.models import Snapshot

RSS_WITH_CONTENT = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Lakeside Gazette</title><link>https://gazette.example/</link>
<item>
  <title>Ferry timetable &amp; fares change on Monday</title>
  <link>https://gazette.example/ferry?utm_source=rss&amp;utm_medium=feed</link>
  <guid isPermaLink="false">gazette-1001</guid>
  <description>&lt;p&gt;Short teaser about the &lt;b&gt;ferry&lt;/b&gt;.&lt;/p&gt;</description>
  <content:encoded><![CDATA[
    <p>The island ferry will run every <em>forty</em> minutes.</p>
    <script>track("ferry")</script><style>p { color: red }</style>
    <!-- editor: check fares -->
    <p>Fares rise by &euro;1&nbsp;for adults.</p>
    <ul><li>Morning: 06:40</li><li>Evening: 21:10</li></ul>
    <h2>Reaction</h2>
    <blockquote>We were not consulted, said a commuter.</blockquote>
  ]]></content:encoded>
  <pubDate>Mon, 02 Mar 2026 08:15:00 GMT</pubDate>
  <dc:creator>Rosa Quill</dc:creator>
</item>
</channel></rss>"""

ATOM_WITH_CONTENT = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Hill Town Radio</title><id>urn:hill:feed</id><updated>2026-03-02T10:00:00Z</updated>
  <entry>
    <id>urn:hill:story:7</id>
    <title type="html">Storm &lt;em&gt;closes&lt;/em&gt; the pass</title>
    <link rel="alternate" href="https://radio.example/storm#live"/>
    <published>2026-03-02T06:00:00Z</published>
    <updated>2026-03-02T09:30:00Z</updated>
    <author><name>Ivo Marsh</name></author>
    <author><name>Tess Lowe</name></author>
    <summary>Snow closes the pass.</summary>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
      <p>Snowploughs are out since dawn.</p><p>The pass stays shut until noon.</p>
    </div></content>
  </entry>
  <entry>
    <id>urn:hill:story:8</id>
    <title>Only a date of publication</title>
    <link href="https://radio.example/quiet"/>
    <published>2026-03-01T12:00:00Z</published>
    <content type="text">First paragraph of text.

Second paragraph
wrapped over two lines.</content>
  </entry>
</feed>"""

RSS_SUMMARY_ONLY = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Brief</title>
<item>
  <title>Library opens late</title>
  <link>https://brief.example/library</link>
  <description>Doors open at ten.&lt;br&gt;Late returns are free.&lt;br/&gt;&lt;br/&gt;Bring ID.
  </description>
</item>
<item>
  <description>No title, no link, only words.</description>
</item>
<item><title>   </title><description>   </description></item>
</channel></rss>"""


def _entries(feed: str) -> list[Any]:
    # A BytesIO, as the parse stage does: feedparser would open bytes that name a file.
    return list(feedparser.parse(io.BytesIO(feed.encode("utf-8"))).entries)


def _only(feed: str) -> Snapshot:
    snapshot = normalise_entry(_entries(feed)[0], "feed-a")
    assert snapshot is not None
    return snapshot


def test_rss_content_encoded_becomes_clean_paragraphs() -> None:
    story = _only(RSS_WITH_CONTENT)
    assert story.title == "Ferry timetable & fares change on Monday"
    assert story.url == "https://gazette.example/ferry"
    assert story.guid == "gazette-1001"
    assert story.summary == "Short teaser about the ferry."
    assert story.paragraphs == (
        "The island ferry will run every forty minutes.",
        "Fares rise by €1 for adults.",
        "Morning: 06:40",
        "Evening: 21:10",
        "Reaction",
        "We were not consulted, said a commuter.",
    )
    assert story.authors == ("Rosa Quill",)
    assert story.published == "2026-03-02T08:15:00Z"


def test_rss_without_updated_element_has_no_updated_date() -> None:
    # feedparser 6 answers entry["updated_parsed"] with the publication date here (issue 310).
    story = _only(RSS_WITH_CONTENT)
    assert (story.published, story.updated) == ("2026-03-02T08:15:00Z", None)


def test_atom_entry_with_xhtml_content_and_two_dates() -> None:
    story = _only(ATOM_WITH_CONTENT)
    assert story.title == "Storm closes the pass"
    assert story.url == "https://radio.example/storm"
    assert story.guid == "urn:hill:story:7"
    assert story.authors == ("Ivo Marsh", "Tess Lowe")
    assert story.summary == "Snow closes the pass."
    assert story.paragraphs == (
        "Snowploughs are out since dawn.",
        "The pass stays shut until noon.",
    )
    assert (story.published, story.updated) == ("2026-03-02T06:00:00Z", "2026-03-02T09:30:00Z")


def test_atom_plain_text_content_splits_on_blank_lines() -> None:
    story = normalise_entry(_entries(ATOM_WITH_CONTENT)[1], "feed-a")
    assert story is not None
    assert story.paragraphs == (
        "First paragraph of text.",
        "Second paragraph wrapped over two lines.",
    )
    assert (story.published, story.updated) == ("2026-03-01T12:00:00Z", None)


ATOM_LIVE_BLOG = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Valley Courier</title><id>urn:courier:feed</id><updated>2026-03-02T10:00:00Z</updated>
  <entry>
    <id>urn:courier:live:floods</id>
    <link rel="alternate" href="https://courier.example/live/floods"/>
    <updated>2026-03-02T10:00:00Z</updated>
    <content type="html">&lt;p&gt;10:00 The river is a metre above normal.&lt;/p&gt;
      &lt;p&gt;09:40 Sandbags are handed out at the fire station.&lt;/p&gt;</content>
  </entry>
</feed>"""


def test_content_only_entry_has_an_empty_summary_and_keeps_its_body() -> None:
    # feedparser copies content into `summary` when an item has none: that copy is not a summary.
    story = _only(ATOM_LIVE_BLOG)
    assert story.summary == ""
    assert story.paragraphs == (
        "10:00 The river is a metre above normal.",
        "09:40 Sandbags are handed out at the fire station.",
    )
    assert summarise_created(story) == "10:00 The river is a metre above normal."
    rss_item = _rss_item("Rates frozen", "https://town.example/rates", "<p>Rates stay put.</p>")
    assert _only(rss_item).summary == ""


def test_a_description_equal_to_the_content_is_still_the_summary() -> None:
    description = "<description>&lt;p&gt;Rates stay put.&lt;/p&gt;</description>"
    feed = _rss_item(
        "Rates frozen", "https://town.example/rates", "<p>Rates stay put.</p>", description
    )
    story = _only(feed)
    assert (story.summary, story.paragraphs) == ("Rates stay put.", ("Rates stay put.",))


def test_summary_only_entry_uses_summary_as_body_split_at_br() -> None:
    story = _only(RSS_SUMMARY_ONLY)
    assert story.paragraphs == ("Doors open at ten.", "Late returns are free.", "Bring ID.")
    assert story.summary == "Doors open at ten. Late returns are free. Bring ID."
    assert story.guid is None


def test_entry_without_guid_or_link_keys_on_title_or_is_dropped() -> None:
    entries = _entries(RSS_SUMMARY_ONLY)
    untitled = normalise_entry(entries[1], "feed-a")
    assert untitled is not None
    assert untitled.paragraphs == ("No title, no link, only words.",)
    assert untitled.url == ""
    assert normalise_entry(entries[2], "feed-a") is None


def test_entries_without_guid_get_ids_from_their_link() -> None:
    story = _only(RSS_SUMMARY_ONLY)
    moved = _only(RSS_SUMMARY_ONLY.replace("/library<", "/library?utm_source=x#top<"))
    assert story.id == moved.id


def test_tag_uri_guid_is_not_taken_as_a_link() -> None:
    feed = ATOM_WITH_CONTENT.replace(
        '<link rel="alternate" href="https://radio.example/storm#live"/>', ""
    )
    assert _only(feed).url == ""


def test_garbage_entries_do_not_raise() -> None:
    weird: list[Any] = [
        {},
        {"title": None, "content": "not a list", "links": 5, "authors": "x"},
        {"title": 3, "content": [None, {"value": 7}], "published_parsed": (2026, 13, 1, 0, 0, 0)},
        {"summary": "<p>ok</p>", "updated_parsed": "yesterday", "authors": [None, {"name": None}]},
        "not a mapping",
    ]
    results = [normalise_entry(entry, "f") for entry in weird]
    assert results[:3] == [None, None, None]
    assert results[3] is not None and results[3].paragraphs == ("ok",)
    assert results[3].updated is None
    assert results[4] is None


def test_plain_dict_entries_are_accepted() -> None:
    entry = {
        "title": "Market day moved",
        "link": "https://town.example/market",
        "updated_parsed": time.struct_time((2026, 3, 4, 5, 6, 7, 0, 0, 0)),
        "author": "Clerk Office",
    }
    story = normalise_entry(entry, "f")
    assert story is not None
    assert (story.updated, story.published, story.authors) == (
        "2026-03-04T05:06:07Z",
        None,
        ("Clerk Office",),
    )


@pytest.mark.parametrize(
    ("html", "paragraphs"),
    [
        ("one<br>two<br/><br/>three", ["one", "two", "three"]),
        ("<div>a <b>bold</b>   move</div><div>\n\n</div>", ["a bold move"]),
        (
            "<table><tr><td>Team</td><td>3</td></tr><tr><td>Rival</td><td>1</td></tr></table>",
            ["Team 3", "Rival 1"],
        ),
        ("<pre>  spaced\n  out  </pre>", ["spaced out"]),
        (
            "Fish &amp; chips &#8211; &lt;cheap&gt; &unknown;",
            ["Fish & chips \u2013 <cheap> &unknown;"],
        ),
        ("<figure><img src=x><figcaption>A heron</figcaption></figure>", ["A heron"]),
        ("<p>before<script>never()", ["before"]),
        ("a<style>p{}</style>b<iframe src=x><p>ad</p></iframe>c<iframe/>d", ["abcd"]),
        ("<p>x</p><noscript><p>enable js</p></noscript><template><p>t</p></template>", ["x"]),
        ("<p>unclosed <i>tags <p>next", ["unclosed tags", "next"]),
        ("<!-- only a comment -->", []),
    ],
)
def test_html_paragraphs(html: str, paragraphs: list[str]) -> None:
    assert html_paragraphs(html) == paragraphs


def _rss_item(title: str, link: str, body: str, extra: str = "") -> str:
    return f"""<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>H</title>
<item><title>{title}</title><link>{link}</link><guid>h-1</guid>{extra}
<content:encoded><![CDATA[{body}]]></content:encoded></item></channel></rss>"""


BASE = _rss_item(
    "Bridge reopens",
    "https://h.example/bridge",
    "<p>The bridge reopened at nine.</p><p>Traffic is light.</p>",
    "<pubDate>Tue, 03 Mar 2026 09:00:00 GMT</pubDate>",
)


@pytest.mark.parametrize(
    "same_to_a_reader",
    [
        _rss_item(
            "  Bridge\n   reopens ",
            "https://h.example/bridge",
            "\n  <p>The   bridge reopened\n at nine.</p>\n\n<p> Traffic is light. </p>",
            "<pubDate>Tue, 03 Mar 2026 09:00:00 GMT</pubDate>",
        ),
        _rss_item(
            "Bridge reopens",
            "https://h.example/bridge",
            "<div><p><span>The bridge</span> reopened at <b></b>nine.</p></div>"
            "<p>Traffic is light.</p>",
            "<pubDate>Tue, 03 Mar 2026 09:00:00 GMT</pubDate>",
        ),
        _rss_item(
            "Bridge reopens",
            "https://H.example/bridge?utm_source=rss&amp;fbclid=1#x",
            "<p>The bridge reopened at nine.</p><p>Traffic is light.</p>",
            "<pubDate>Tue, 03 Mar 2026 09:00:00 GMT</pubDate>",
        ),
        _rss_item(
            "Bridge reopens",
            "https://h.example/bridge",
            "<p>The bridge reopened at nine.</p><p>Traffic is light.</p><!-- v2 -->",
            "<pubDate>Tue, 03 Mar 2026 09:00:00 GMT</pubDate>"
            "<atom:updated xmlns:atom='http://www.w3.org/2005/Atom'>2026-03-03T11:00:00Z</atom:updated>",
        ),
    ],
)
def test_content_hash_ignores_whitespace_markup_tracking_and_dates(same_to_a_reader: str) -> None:
    assert content_hash(_only(same_to_a_reader)) == content_hash(_only(BASE))


@pytest.mark.parametrize(
    "changed",
    [
        BASE.replace("Bridge reopens", "Bridge reopens again"),
        BASE.replace("at nine", "at ten"),
        BASE.replace("<p>Traffic is light.</p>", "<p>Traffic</p><p>is light.</p>"),
        BASE.replace("https://h.example/bridge", "https://h.example/bridge-2"),
        BASE.replace("<guid>", "<author>x@h.example (Ann Vale)</author><guid>"),
    ],
)
def test_content_hash_changes_when_visible_text_changes(changed: str) -> None:
    assert content_hash(_only(changed)) != content_hash(_only(BASE))


def test_content_hash_is_a_stable_sha256() -> None:
    snapshot = Snapshot(id="i", feed="f", url="https://a.example/", title="Tëst", paragraphs=("p",))
    # Pinned: a change of encoding would re-version every stored story.
    assert (
        content_hash(snapshot) == "54a6828a61fde9517d6c1077b55dc5ede274899c04534eebc25e2a40d6b088a1"
    )


def test_content_hash_ignores_a_new_updated_date() -> None:
    restamped = _only(
        BASE.replace(
            "<guid>",
            "<atom:updated xmlns:atom='http://www.w3.org/2005/Atom'>"
            "2026-03-03T11:00:00Z</atom:updated><guid>",
        )
    )
    assert restamped.updated == "2026-03-03T11:00:00Z" != _only(BASE).updated
    assert content_hash(restamped) == content_hash(_only(BASE))
