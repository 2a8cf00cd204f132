"""Turn one parsed feed entry into a Snapshot: the story as a reader sees it, without markup.

Pure: takes what feedparser already parsed, does no I/O. Never raises on anything feedparser can
produce; an entry with nothing a reader could use becomes None.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from liveupdates.feeds.identity import canonical_url, story_id
from liveupdates.models import Snapshot

# Elements whose start or end begins a new paragraph.
_BLOCK_TAGS: frozenset[str] = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "legend",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)

# Elements whose content a reader never sees as text.
_HIDDEN_TAGS: frozenset[str] = frozenset(
    {"script", "style", "iframe", "noscript", "template", "object", "embed", "svg", "math", "head"}
)

# Table cells sit side by side: keep their texts apart without breaking the row.
_CELL_TAGS: frozenset[str] = frozenset({"td", "th"})

_HTML_TYPES: tuple[str, ...] = ("text/html", "application/xhtml+xml")


# Control characters (NUL from base64 bodies, stray C1 bytes from mis-declared encodings) are
# invisible to a reader but would still change hashes and diffs.
_CONTROL_CHARS: dict[int, None] = dict.fromkeys(
    [c for c in range(0x20) if chr(c) not in "\t\n\r\f\v"] + list(range(0x7F, 0xA0))
)


def _collapse(text: str) -> str:
    # str.split() also splits on non-breaking and other unicode spaces, alike to a reader.
    return " ".join(text.translate(_CONTROL_CHARS).split())


class _ParagraphParser(HTMLParser):
    """Collects the visible text of an HTML fragment, one string per block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._buffer: list[str] = []
        self._hidden_depth = 0

    def flush(self) -> None:
        text = _collapse("".join(self._buffer))
        self._buffer.clear()
        if text:
            self.paragraphs.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif self._hidden_depth:
            return  # blocks inside hidden content must not split the visible text around it
        elif tag in _BLOCK_TAGS:
            self.flush()
        elif tag in _CELL_TAGS:
            self._buffer.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <iframe/> opens nothing, so it must not hide what follows.
        if tag in _BLOCK_TAGS and not self._hidden_depth:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS and not self._hidden_depth:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self._buffer.append(data)


def html_paragraphs(html: str) -> list[str]:
    """Visible text of an HTML fragment as paragraphs, whitespace collapsed, entities decoded."""
    parser = _ParagraphParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        # html.parser has asserted on some malformed markup in the past; keep what was read so far.
        pass
    parser.flush()
    return parser.paragraphs


def text_paragraphs(text: str) -> list[str]:
    """Plain text split on blank lines, whitespace collapsed."""
    paragraphs: list[str] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            block.append(line)
        elif block:
            paragraphs.append(_collapse(" ".join(block)))
            block.clear()
    return [paragraph for paragraph in paragraphs if paragraph]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """The value feedparser actually parsed for `key`, bypassing FeedParserDict's aliases.

    feedparser 6 answers entry["updated_parsed"] with the published date when the feed has no
    updated element, which would make every story look edited at publication time.
    """
    if isinstance(entry, dict):
        return dict.get(entry, key)
    return entry.get(key) if key in entry else None


def _is_html(content_type: Any) -> bool:
    return isinstance(content_type, str) and content_type.lower().startswith(_HTML_TYPES)


def _is_readable(content_type: Any) -> bool:
    # Atom allows base64 content of any media type; only text is something a reader can read.
    if not isinstance(content_type, str) or not content_type:
        return True
    return _is_html(content_type) or content_type.lower().startswith("text/")


def _detail_paragraphs(value: str, content_type: Any) -> list[str]:
    # feedparser leaves a missing type as None for some dialects; markup in it is still markup.
    if _is_html(content_type) or (content_type is None and "<" in value):
        return html_paragraphs(value)
    return text_paragraphs(value)


def _title(entry: Mapping[str, Any]) -> str:
    title = _str(_own(entry, "title"))
    detail = _own(entry, "title_detail")
    content_type = detail.get("type") if isinstance(detail, Mapping) else None
    return _collapse(" ".join(_detail_paragraphs(title, content_type)))


def _summary_is_content_copy(entry: Mapping[str, Any]) -> bool:
    """True if the entry's `summary` is only feedparser's copy of its content.

    feedparser (mixin `_end_content`) puts a text/HTML content's value in `summary` when the item
    has no summary/description of its own, and only then sets no `summary_detail`: a real element
    always gets one, even when its text equals the content. Both tests, so an entry built by hand
    with a bare `summary` keeps it.
    """
    summary = _own(entry, "summary")
    if isinstance(_own(entry, "summary_detail"), Mapping) or not isinstance(summary, str):
        return False
    content = _own(entry, "content")
    if not isinstance(content, Sequence) or isinstance(content, str):
        return False
    return any(isinstance(item, Mapping) and item.get("value") == summary for item in content)


def _summary_paragraphs(entry: Mapping[str, Any]) -> list[str]:
    summary = _str(_own(entry, "summary"))
    detail = _own(entry, "summary_detail")
    content_type = detail.get("type") if isinstance(detail, Mapping) else "text/html"
    return _detail_paragraphs(summary, content_type)


def _content_paragraphs(entry: Mapping[str, Any]) -> list[str]:
    """Paragraphs of the richest content: HTML over plain, the longest of each; [] if none."""
    content = _own(entry, "content")
    candidates: list[tuple[bool, int, str, Any]] = []
    if isinstance(content, Sequence) and not isinstance(content, str):
        for item in content:
            if (
                isinstance(item, Mapping)
                and _str(item.get("value")).strip()
                and _is_readable(item.get("type"))
            ):
                value = item["value"]
                candidates.append((_is_html(item.get("type")), len(value), value, item.get("type")))
    if candidates:
        _, _, value, content_type = max(candidates, key=lambda c: (c[0], c[1]))
        return _detail_paragraphs(value, content_type)
    return []


def _link(entry: Mapping[str, Any]) -> str:
    """The story's web address; only http(s), since feedparser copies tag: guids into `link`."""
    candidates = [_own(entry, "link")]
    links = _own(entry, "links")
    if isinstance(links, Sequence) and not isinstance(links, str):
        candidates += [
            link.get("href")
            for link in links
            if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate"
        ]
    for candidate in candidates:
        url = canonical_url(_str(candidate))
        try:
            if urlsplit(url).scheme in ("http", "https"):
                return url
        except ValueError:
            continue
    return ""


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    authors = _own(entry, "authors")
    if isinstance(authors, Sequence) and not isinstance(authors, str):
        for author in authors:
            if isinstance(author, Mapping):
                names.append(_collapse(_str(author.get("name")) or _str(author.get("email"))))
    if not any(names):
        names = [_collapse(_str(_own(entry, "author")))]
    # The same person listed twice (dc:creator and author) is one byline.
    return tuple(dict.fromkeys(name for name in names if name))


def _iso_date(value: Any) -> str | None:
    """struct_time (UTC, as feedparser gives it) -> "YYYY-MM-DDTHH:MM:SSZ"; None if implausible."""
    try:
        year, month, day, hour, minute, second = (int(part) for part in tuple(value)[:6])
    except (TypeError, ValueError):
        return None
    if not (1 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= 31):
        return None
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 61):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{min(second, 59):02d}Z"


def normalise_entry(entry: Mapping[str, Any], feed_id: str) -> Snapshot | None:
    """The Snapshot of one feedparser entry, or None if it has no title, link or body."""
    if not isinstance(entry, Mapping):
        return None
    title = _title(entry)
    url = _link(entry)
    content = _content_paragraphs(entry)
    # A summary that is feedparser's copy of the content is left out: the body already holds that
    # text, and a copy would make every diff carry the whole story.
    copy = _summary_is_content_copy(entry)
    if copy and content:
        summary: list[str] = []  # not parsed at all: nothing would read it
        paragraphs = content
    else:
        summary = _summary_paragraphs(entry)
        # Without readable content the summary is the body too: parsed once, used for both.
        paragraphs = content or summary
        if copy:
            summary = []
    if not (title or url or paragraphs):
        return None
    guid = _str(_own(entry, "id")).strip() or None
    return Snapshot(
        id=story_id(feed_id, guid, url, title=title),
        feed=feed_id,
        url=url,
        title=title,
        summary=" ".join(summary),
        authors=_authors(entry),
        published=_iso_date(_own(entry, "published_parsed")),
        updated=_iso_date(_own(entry, "updated_parsed")),
        paragraphs=tuple(paragraphs),
        guid=guid,
    )


def content_hash(snapshot: Snapshot) -> str:
    """sha256 hex of what a reader sees; without dates, so a re-stamped story is no change."""
    visible = {
        "title": snapshot.title,
        "url": snapshot.url,
        "summary": snapshot.summary,
        "authors": list(snapshot.authors),
        "paragraphs": list(snapshot.paragraphs),
    }
    encoded = json.dumps(visible, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()
