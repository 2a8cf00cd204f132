"""Fictional stories and an RSS 2.0 builder for tests that edit a feed between polls."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from html import escape

BRIDGE = [
    "The Saltmarsh Bridge reopened to traffic on Tuesday morning, eleven weeks after a barge struck "
    "one of its piers during the autumn gales.",
    "Engineers from the county works department signed off the repairs shortly after dawn, and the "
    "first vehicle across was a bakery van from Quayside Lane.",
    "Councillor Mira Okonjo said the closure had cost shops on the east bank an estimated 40 percent "
    "of their usual trade.",
    "A temporary ferry that carried foot passengers during the closure will stop running on Friday.",
]


@dataclass
class Item:
    guid: str | None
    title: str
    link: str
    paragraphs: list[str] = field(default_factory=list)
    pub_date: str = "Tue, 24 Nov 2026 08:00:00 GMT"
    extra_markup: bool = False  # wrap paragraphs in spans/whitespace: same text, other bytes

    def with_(self, **changes: object) -> Item:
        return replace(self, **changes)  # type: ignore[arg-type]


def bridge_story(**changes: object) -> Item:
    item = Item(
        guid="harbour-gazette-2041",
        title="Saltmarsh Bridge reopens after eleven weeks",
        link="https://gazette.example/news/saltmarsh-bridge-reopens",
        paragraphs=list(BRIDGE),
    )
    return item.with_(**changes)


def rss(items: list[Item], *, title: str = "Harbour Town Gazette") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        f"<channel><title>{escape(title)}</title><link>https://gazette.example/</link>",
        "<description>Fictional local news for tests</description>",
    ]
    for item in items:
        if item.extra_markup:
            html = "\n\n".join(
                f"<p>  <span>{escape(p)}</span>\n </p><!-- ad slot -->" for p in item.paragraphs
            )
        else:
            html = "".join(f"<p>{escape(p)}</p>" for p in item.paragraphs)
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        parts.append(f"<pubDate>{item.pub_date}</pubDate>")
        parts.append(f"<content:encoded><![CDATA[{html}]]></content:encoded>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


STORM_WATCH = [
    "Forecasters have extended the storm warning for Greyhaven Point until Thursday noon, as a "
    "deep low moves up the coast faster than expected.",
    "The harbour master has closed the outer moorings and asked crews to double their lines.",
]
# A live story's running entries: each one names its number, so every entry is a new paragraph.
_STORM_ENTRIES = [
    "the lifeboat crew reported swells of six metres beyond the breakwater",
    "the coast road between Greyhaven and Tollmere was closed by spray and shingle",
    "the keeper at the old lighthouse said the lamp was running on its reserve generator",
    "two fishing boats sheltering in Culver Bay confirmed they were riding out the gusts safely",
    "the school board said classes at the harbour primary would start an hour late",
    "power was restored to the streets above the fish market after a short outage",
    "the ferry company moved its evening sailing to the sheltered inner pier",
    "volunteers stacked sandbags along the promenade outside the Anchor Rooms",
]


def storm_watch_entry(number: int) -> str:
    """The story's `number`th live entry (1-based), distinct from every other one."""
    what = _STORM_ENTRIES[(number - 1) % len(_STORM_ENTRIES)]
    return f"Entry {number}: {what[0].upper()}{what[1:]} (bulletin {number})."


def storm_watch_story(entries: int) -> Item:
    """The Greyhaven storm watch with its first `entries` live entries, newest last."""
    return Item(
        guid="greyhaven-courier-storm-watch",
        title="Storm watch: Greyhaven Point braces for the night",
        link="https://courier.example/live/greyhaven-storm-watch",
        paragraphs=[*STORM_WATCH, *(storm_watch_entry(n) for n in range(1, entries + 1))],
    )
