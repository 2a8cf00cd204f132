"""Stable identity for stories: one canonical URL and one short id per story.

Feeds re-publish the same story with tracking parameters, fragments or a different host case; a
reader must not see that as a new story. Everything here is pure and never raises on feed input.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import unquote, urlsplit, urlunsplit

# Query parameters that only tell analytics where a click came from; they never change the page.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "ocid",
        "cmpid",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "at_link_id",
        "at_link_type",
        "at_link_origin",
        "at_ptr_name",
        "at_format",
        "at_bbc_team",
        "_ga",
        "_gl",
        "mkt_tok",
        "vero_id",
        "oly_anon_id",
        "oly_enc_id",
        "rb_clickid",
        "ref_src",
        "smid",
        "wt_mc",
    }
)

# Whole families of analytics parameters (utm_source, utm_medium, ...).
TRACKING_PREFIXES: tuple[str, ...] = ("utm_",)

_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}

# Length of the story id: 16 base32 characters carry 80 bits, plenty to never collide per feed.
_ID_LENGTH = 16


def _is_tracking(param: str) -> bool:
    key = unquote(param.split("=", 1)[0]).strip().lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def _clean_query(query: str) -> str:
    # Work on the raw pieces so kept parameters keep their exact original encoding and order.
    kept = [piece for piece in query.split("&") if piece and not _is_tracking(piece)]
    return "&".join(kept)


def canonical_url(url: str) -> str:
    """The form of `url` used for identity and shown to readers.

    Lowercases scheme and host, drops a default port, the fragment and tracking parameters, and
    gives an empty http(s) path a "/". Input that does not parse comes back stripped, unchanged.
    """
    if not isinstance(url, str):
        return ""
    stripped = url.strip()
    try:
        parts = urlsplit(stripped)
        scheme = parts.scheme.lower()
        netloc = parts.netloc
        if parts.hostname is not None:
            host = parts.hostname  # already lowercased by urllib
            if ":" in host:
                host = f"[{host}]"  # IPv6 literals need their brackets back
            port = parts.port  # raises ValueError on a garbage port
            if port is not None and _DEFAULT_PORTS.get(scheme) != port:
                host = f"{host}:{port}"
            userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
            netloc = f"{userinfo}@{host}" if userinfo else host
        path = parts.path
        if not path and netloc and scheme in _DEFAULT_PORTS:
            path = "/"
        return urlunsplit((scheme, netloc, path, _clean_query(parts.query), ""))
    except ValueError:
        return stripped


def story_id(feed_id: str, guid: str | None, url: str | None, title: str | None = None) -> str:
    """A short, URL-safe id for a story, the same in every process and on every run.

    The key is the feed's guid when it has one (feeds promise it is stable), else the canonical
    URL, else - for feeds that give neither - the title with whitespace collapsed. A title-keyed
    story gets a new id if its title is edited: nothing better exists for such feeds.
    Ids contain only [a-z2-7].
    """
    key = (guid or "").strip()
    if not key and url and url.strip():
        key = canonical_url(url)
    if not key:
        # Prefixed so a title can never collide with a guid or URL of the same text.
        key = "title\0" + " ".join((title or "").split())
    digest = hashlib.sha256(f"{feed_id}\0{key}".encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:_ID_LENGTH]
