"""What the benchmarks publish: ~1 KB update events carrying their publish time, and feeds."""

from __future__ import annotations

import random
from html import escape
from typing import Any

STORY_ID = "benchstory"
FEED_ID = "benchfeed"
CHANNEL = f"story:{STORY_ID}"

_WORDS = [
    "harbour",
    "council",
    "bridge",
    "engineers",
    "repairs",
    "morning",
    "traffic",
    "ferry",
    "quayside",
    "ministry",
    "statement",
    "drone",
    "residence",
    "officials",
    "evidence",
    "claims",
    "video",
    "attack",
    "night",
    "response",
    "river",
    "storm",
    "schools",
    "minister",
    "budget",
    "vote",
    "police",
    "witnesses",
    "hospital",
    "emergency",
    "crews",
    "weather",
    "forecast",
    "election",
]


def sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def paragraph(rng: random.Random, sentences: int = 3, words: int = 14) -> str:
    return " ".join(sentence(rng, words) for _ in range(sentences))


def update_event(version: int, t0: float, size: int = 1000) -> dict[str, Any]:
    """An `updated` event shaped like the pipeline's, about `size` bytes once encoded."""
    rng = random.Random(version)
    text = paragraph(rng, 8)
    filler = max(0, size - 520)
    text = (text * (1 + filler // max(1, len(text))))[:filler]
    return {
        "t0": t0,  # first, so a client finds it without parsing the frame
        "kind": "updated",
        "story": {
            "id": STORY_ID,
            "feed": FEED_ID,
            "url": f"https://gazette.example/live/{STORY_ID}",
            "title": "Live: storm closes the Saltmarsh Bridge",
            "version": version,
        },
        "diff": {
            "from_version": version - 1,
            "to_version": version,
            "fields": {},
            "paragraphs": [
                {
                    "op": "insert",
                    "old_start": 0,
                    "old_end": 0,
                    "new_start": 0,
                    "new_end": 1,
                    "old": [],
                    "new": [text],
                }
            ],
        },
        "summary": "1 paragraph added",
        "at": "2026-11-26T10:00:00.000000Z",
    }


def read_t0(frame: str) -> float | None:
    """The publish time embedded in a frame, without decoding the whole JSON."""
    i = frame.find('"t0":')
    if i < 0:
        return None
    i += 5
    comma, brace = frame.find(",", i), frame.find("}", i)
    end = brace if comma < 0 or 0 <= brace < comma else comma
    return float(frame[i:end])


# -- feeds -------------------------------------------------------------------------------------


def rss(items: list[tuple[str, str, list[str]]], title: str = "Bench Gazette") -> bytes:
    """RSS 2.0 with content:encoded paragraphs; items are (guid, title, paragraphs).

    An item has no summary of its own (feedparser's copy of the content is not used, so the
    story's summary is ""): an update of one paragraph is under 1 KB."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        f"<channel><title>{escape(title)}</title><link>https://gazette.example/</link>",
        "<description>Benchmark feed</description>",
    ]
    for guid, headline, paragraphs in items:
        html = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        parts += [
            "<item>",
            f"<title>{escape(headline)}</title>",
            f"<link>https://gazette.example/news/{escape(guid)}</link>",
            f'<guid isPermaLink="false">{escape(guid)}</guid>',
            "<pubDate>Thu, 26 Nov 2026 08:00:00 GMT</pubDate>",
            f"<content:encoded><![CDATA[{html}]]></content:encoded>",
            "</item>",
        ]
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def news_feed(seed: int, items: int = 10, paragraphs: int = 6) -> list[tuple[str, str, list[str]]]:
    rng = random.Random(seed)
    return [
        (f"s{seed}-{i}", sentence(rng, 8), [paragraph(rng) for _ in range(paragraphs)])
        for i in range(items)
    ]
