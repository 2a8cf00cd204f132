"""The feed list: config/feeds.toml (or $LIVEUPDATES_FEEDS) and the validation every feed passes.

The same `validate_feed` guards the file and, later, the admin API, so a feed is held to one set of
rules wherever it comes from.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from liveupdates.models import FeedConfig
from liveupdates.settings import Settings, SettingsError

# Used with fullmatch: `$` would also accept a trailing newline ("id\n").
FEED_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SELF_PLACEHOLDER = "{self}"


class FeedError(ValueError):
    """A feed definition is invalid; the message says which field and why."""


def derived_feed_id(url: str) -> str:
    """A stable, valid feed id for a URL given without one: its host as letters, digits and '-'
    (an IDN host in its xn-- form, an IPv6 host as ipv6-...), then a hash of the whole URL.
    """
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    # A host the codec cannot encode keeps its letters, which become '-' below.
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", host).strip("-")
    if ":" in host:
        slug = f"ipv6-{slug}"  # "::1" alone would leave "1"
    slug = slug[:40].rstrip("-") or "feed"
    return f"{slug}-{hashlib.sha256(url.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url.replace(SELF_PLACEHOLDER, "http://self", 1))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FeedError(f"url must be an http or https URL, got {url!r}")
    return url


def check_interval(seconds: Any, settings: Settings) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise FeedError(f"interval_seconds must be a number, got {seconds!r}")
    low, high = settings.poll_min_interval, settings.poll_max_interval
    if not low <= float(seconds) <= high:
        raise FeedError(f"interval_seconds must be between {low:g} and {high:g}, got {seconds!r}")
    return float(seconds)


def validate_feed(data: Mapping[str, Any], settings: Settings) -> FeedConfig:
    """Turn one `[[feeds]]` table (or an admin API body) into a FeedConfig, or raise FeedError."""
    allowed = {"id", "url", "interval_seconds", "title", "paused", "adaptive", "websub"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise FeedError(f"unknown field {unknown[0]!r}")
    feed_id = data.get("id")
    if not isinstance(feed_id, str) or not FEED_ID_RE.fullmatch(feed_id):
        raise FeedError(
            f"id must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), "
            f"got {feed_id!r}"
        )
    url = data.get("url")
    if not isinstance(url, str):
        raise FeedError(f"feed {feed_id}: url is required")
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        raise FeedError(f"feed {feed_id}: title must be a string")
    for flag in ("paused", "adaptive", "websub"):
        if flag in data and not isinstance(data[flag], bool):
            raise FeedError(f"feed {feed_id}: {flag} must be true or false")
    try:
        return FeedConfig(
            id=feed_id,
            url=check_url(url),
            interval_seconds=check_interval(data.get("interval_seconds", 60), settings),
            title=title,
            paused=bool(data.get("paused", False)),
            adaptive=bool(data.get("adaptive", True)),
            websub=bool(data.get("websub", True)),
        )
    except FeedError as exc:
        raise FeedError(f"feed {feed_id}: {exc}") from None


def load_feeds(path: Path, settings: Settings) -> list[FeedConfig]:
    """Read a feeds file. Raises SettingsError (one line naming the file and the feed) when bad."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"feeds file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"feeds file {path} is not valid TOML: {exc}") from None
    tables = data.get("feeds", [])
    if not isinstance(tables, list):
        raise SettingsError(f"feeds file {path}: expected [[feeds]] tables")
    feeds: list[FeedConfig] = []
    seen: set[str] = set()
    for table in tables:
        try:
            feed = validate_feed(table, settings)
        except FeedError as exc:
            raise SettingsError(f"feeds file {path}: {exc}") from None
        if feed.id in seen:
            raise SettingsError(f"feeds file {path}: duplicate feed id {feed.id!r}")
        seen.add(feed.id)
        feeds.append(feed)
    return feeds


def resolve_url(url: str, self_url: str | None) -> str:
    """Expand `{self}` to the running service's base URL (the demo feed uses it)."""
    if SELF_PLACEHOLDER not in url:
        return url
    if not self_url:
        raise FeedError(f"{url!r} refers to {{self}}, which only `liveupdates serve` provides")
    return url.replace(SELF_PLACEHOLDER, self_url.rstrip("/"))
