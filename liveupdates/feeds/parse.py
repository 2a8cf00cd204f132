"""Turn fetched feed bytes into feedparser entries. No I/O of its own.

feedparser.parse() treats a string argument as a URL or a file path and will happily fetch or open
it, and does the same with a bytes argument that happens to name an existing file. We therefore
always hand it a BytesIO of the body we fetched, so parsing can never touch the network or disk.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import feedparser
import feedparser.api
from feedparser.exceptions import ThingsNobodyCaresAboutButMe

log = logging.getLogger(__name__)

# feedparser asks xml.sax for libxml2's SAX driver first on every parse: where it is not installed
# that is a failed import, a search of sys.path, ~30 µs per parse. Asked once, here; the parser
# used (expat, the fallback) is the same.
if importlib.util.find_spec("drv_libxml2") is None:
    feedparser.api.PREFERRED_XML_PARSERS[:] = [
        name for name in feedparser.api.PREFERRED_XML_PARSERS if name != "drv_libxml2"
    ]


@dataclass(slots=True)
class ParsedFeed:
    """What came out of one feed document.

    `warning` is feedparser's bozo text for a feed that parsed with problems (its entries are still
    used as far as they parsed). `error` is set only when nothing usable came out: no entries, and
    either the XML was broken or it was not RSS/Atom at all. A valid feed with no entries is fine.
    """

    title: str = ""
    entries: list[Any] = field(default_factory=list)
    bozo: bool = False
    warning: str | None = None
    error: str | None = None
    version: str = ""
    # bozo for a reason that makes the document less of a feed (broken XML), not a mere
    # content-type or charset complaint
    broken: bool = False
    # (rel, href) of the feed's own links (atom:link, also inside RSS): WebSub discovery reads them
    links: list[tuple[str, str]] = field(default_factory=list)


def parse_feed(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Parse `body` as RSS/Atom, using the HTTP `headers` for the charset and `url` as the base
    for relative links. Never raises."""
    if isinstance(body, str):
        # Callers should pass bytes; encode rather than let a str reach feedparser as a "URL".
        body = body.encode("utf-8")
    # feedparser compares header names case-sensitively in lower case.
    response_headers = {str(k).lower(): str(v) for k, v in headers.items()}
    if url and "content-location" not in response_headers:
        response_headers["content-location"] = url

    try:
        result = feedparser.parse(io.BytesIO(body), response_headers=response_headers)
    except Exception as exc:
        # feedparser is meant to report problems through `bozo`; anything escaping is a bug in
        # it on hostile input, and must not take the poll loop down with it.
        log.warning("feedparser raised on %s", url, exc_info=True)
        return ParsedFeed(bozo=True, error=f"not a feed: parser crashed: {type(exc).__name__}")

    bozo = bool(result.get("bozo"))
    problem = result.get("bozo_exception")
    warning = _bozo_text(problem) if bozo else None
    # Content-type and charset complaints do not make a document less of a feed; broken XML does.
    broken = bozo and not isinstance(problem, ThingsNobodyCaresAboutButMe)
    feed_meta = result.get("feed") or {}
    entries = list(result.get("entries") or [])
    parsed = ParsedFeed(
        title=str(feed_meta.get("title", "") or ""),
        entries=entries,
        bozo=bozo,
        warning=warning,
        version=str(result.get("version", "") or ""),
        broken=broken,
        links=_links(feed_meta),
    )
    # `version` is feedparser's verdict that it saw RSS, Atom or RDF; an HTML page or JSON gets
    # none, even though the loose parser may still pull "feed" fields out of it.
    if not entries and (broken or not parsed.version):
        parsed.error = f"not a feed: {_no_feed_reason(body, warning)}"
    return parsed


def _links(feed_meta: Any) -> list[tuple[str, str]]:
    found = []
    for link in feed_meta.get("links") or []:
        rel, href = link.get("rel"), link.get("href")
        if isinstance(rel, str) and isinstance(href, str) and href:
            found.append((rel, href))
    return found


def _no_feed_reason(body: bytes, warning: str | None) -> str:
    if not body.strip():
        return "empty body"
    if warning:
        return warning
    return "no feed elements found"


def _bozo_text(exc: object) -> str:
    if exc is None:
        return "malformed feed"
    text = str(exc).strip()
    return text or type(exc).__name__
