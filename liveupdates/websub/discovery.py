"""Finding a feed's WebSub hub and topic (its `self` URL). Pure.

WebSub §4: HTTP `Link` headers are looked at first, then the document's own links
(`<atom:link rel="hub">` / `rel="self"`, in Atom and in RSS). Relative URLs are resolved against
the URL the feed was fetched from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

# One link-value of a Link header: <uri> followed by ;-separated parameters.
_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*(?:\"[^\"]*\")?[^;,]*)*)")
_REL_RE = re.compile(r";\s*rel\s*=\s*(?:\"([^\"]*)\"|([^\s;,]+))", re.IGNORECASE)
MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class Discovered:
    """A feed's WebSub hub and the topic to subscribe to."""

    hub: str
    topic: str


def header_links(value: str) -> list[tuple[str, str]]:
    """(rel, url) pairs of a Link header value (several headers joined by commas are fine)."""
    found: list[tuple[str, str]] = []
    for match in _LINK_RE.finditer(value):
        url, params = match.group(1).strip(), match.group(2)
        for rel in _REL_RE.finditer(params):
            for name in (rel.group(1) or rel.group(2) or "").split():
                found.append((name.lower(), url))
    return found


def _usable(url: str, base: str) -> str | None:
    absolute = urljoin(base, url.strip())
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(absolute) > MAX_URL_LENGTH:
        return None
    return absolute


def _pick(links: Iterable[tuple[str, str]], base: str) -> tuple[str | None, str | None]:
    hub = topic = None
    for rel, url in links:
        usable = _usable(url, base)
        if usable is None:
            continue
        if rel == "hub" and hub is None:
            hub = usable
        elif rel == "self" and topic is None:
            topic = usable
    return hub, topic


def discover(
    headers: Mapping[str, str], document_links: Iterable[tuple[str, str]], url: str
) -> Discovered | None:
    """The hub and topic of a fetched feed, or None when it names no hub.

    `headers` are the response headers, `document_links` the (rel, href) pairs of the feed's own
    links, `url` the URL it was fetched from. Header links win over document links, each for its
    own rel; a feed with a hub but no self link is subscribed under the URL it was fetched from.
    """
    link_value = next((v for k, v in headers.items() if k.lower() == "link"), "")
    header_hub, header_topic = _pick(header_links(link_value), url) if link_value else (None, None)
    doc_hub, doc_topic = _pick(((r.lower(), h) for r, h in document_links), url)
    hub = header_hub or doc_hub
    if hub is None:
        return None
    return Discovered(hub=hub, topic=header_topic or doc_topic or url)
