"""Pure rules of the admin API: validating a new feed or a change, and the JSON ops see.

Status codes: 400 for a body that is not what the API takes (not JSON, not an object, unknown or
missing fields, wrong JSON types); 422 for well-formed values that are not acceptable (interval
outside the settings' bounds, a URL that is not http/https, a malformed id; api.py adds a URL
whose host resolves only to refused addresses, which needs I/O); 409 when the id or the URL is
already another feed's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import Any

from liveupdates.feeds.config import FEED_ID_RE, FeedError, check_interval, check_url
from liveupdates.models import FeedConfig, FeedHealth
from liveupdates.settings import Settings
from liveupdates.validate import InvalidInput, check_text, parse_number

DEFAULT_INTERVAL = 60.0
CREATE_FIELDS = {"url", "id", "title", "interval_seconds", "paused", "adaptive", "websub"}
PATCH_FIELDS = {"url", "title", "interval_seconds", "paused", "adaptive", "websub"}
# Longest url, id or title accepted (ids are further limited by their pattern).
MAX_TEXT = 4096


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _check_shape(body: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            400,
            "bad_request",
            f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})",
        )
    try:
        for name in ("url", "id"):
            if name in body:
                check_text(body[name], name, max_length=MAX_TEXT)
        if "title" in body and body["title"] is not None:
            if not isinstance(body["title"], str):
                raise InvalidInput("title must be a string or null")
            check_text(body["title"], "title", max_length=MAX_TEXT)
        if "interval_seconds" in body:
            parse_number(body["interval_seconds"], "interval_seconds (seconds)")
    except InvalidInput as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    for flag in ("paused", "adaptive", "websub"):
        if flag in body and not isinstance(body[flag], bool):
            raise ApiError(400, "bad_request", f"{flag} must be true or false")
    return body


def _url(value: str) -> str:
    try:
        return check_url(value)
    except FeedError as exc:
        raise ApiError(422, "invalid_url", str(exc)) from None


def _interval(value: float, settings: Settings) -> float:
    try:
        return check_interval(value, settings)
    except FeedError as exc:
        raise ApiError(422, "invalid_interval", str(exc)) from None


def _check_unique_url(url: str, feed_id: str, existing: Iterable[FeedConfig]) -> None:
    for other in existing:
        if other.id != feed_id and other.url == url:
            raise ApiError(409, "duplicate_url", f"feed {other.id!r} already polls {url}")


def new_feed(
    body: Any, settings: Settings, existing: Iterable[FeedConfig], default_id: str
) -> FeedConfig:
    """The feed a POST body asks for. `default_id` is used when the body names none."""
    data = _check_shape(body, CREATE_FIELDS)
    if "url" not in data:
        raise ApiError(400, "bad_request", "url is required")
    feed_id = data.get("id", default_id)
    if not isinstance(feed_id, str):
        raise ApiError(400, "bad_request", "id must be a string")
    if not FEED_ID_RE.fullmatch(feed_id):
        raise ApiError(
            422,
            "invalid_id",
            "id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    feed = FeedConfig(
        id=feed_id,
        url=_url(data["url"]),
        interval_seconds=_interval(data.get("interval_seconds", DEFAULT_INTERVAL), settings),
        title=data.get("title"),
        paused=data.get("paused", False),
        adaptive=data.get("adaptive", True),
        websub=data.get("websub", True),
    )
    existing = list(existing)
    if any(other.id == feed.id for other in existing):
        raise ApiError(409, "duplicate_id", f"a feed with id {feed.id!r} already exists")
    _check_unique_url(feed.url, feed.id, existing)
    return feed


def patched_feed(
    feed: FeedConfig, body: Any, settings: Settings, existing: Iterable[FeedConfig]
) -> FeedConfig:
    """`feed` with a PATCH body's changes applied."""
    if isinstance(body, Mapping) and "id" in body:
        raise ApiError(400, "bad_request", "a feed's id cannot be changed; add a new feed instead")
    data = _check_shape(body, PATCH_FIELDS)
    if not data:
        raise ApiError(
            400, "bad_request", f"nothing to change (fields: {', '.join(sorted(PATCH_FIELDS))})"
        )
    changes: dict[str, Any] = {}
    if "url" in data:
        changes["url"] = _url(data["url"])
        _check_unique_url(changes["url"], feed.id, existing)
    if "interval_seconds" in data:
        changes["interval_seconds"] = _interval(data["interval_seconds"], settings)
    for name in ("title", "paused", "adaptive", "websub"):
        if name in data:
            changes[name] = data[name]
    return replace(feed, **changes)


def changed_fields(before: FeedConfig, after: FeedConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only what differs, for the audit log."""
    old, new = asdict(before), asdict(after)
    keys = [k for k in new if old.get(k) != new[k]]
    return {k: old[k] for k in keys}, {k: new[k] for k in keys}


def feed_status(health: FeedHealth) -> str:
    """One word for the page and the CLI: paused, failing, pending (never polled) or ok."""
    if health.config.paused:
        return "paused"
    if health.fetch.consecutive_errors > 0:
        return "failing"
    if health.last_poll is None:
        return "pending"
    return "ok"


def feed_json(health: FeedHealth, websub: dict[str, Any] | None = None) -> dict[str, Any]:
    """A feed and its health as the API shows it; `websub` is its WebSub view
    (liveupdates/websub/lease.py `websub_view`), "off" when not given."""
    config, last = health.config, health.last_poll
    return {
        "id": config.id,
        "url": config.url,
        "title": config.title,
        "interval_seconds": config.interval_seconds,
        "paused": config.paused,
        "adaptive": config.adaptive,
        "websub": config.websub,
        "health": {
            "status": feed_status(health),
            "next_poll_at": None if config.paused else health.next_poll_at,
            "last_poll_at": last.at if last else None,
            "last_result": last.status if last else None,
            "last_http_status": last.http_status if last else None,
            "last_duration_ms": last.duration_ms if last else None,
            "entries_last_poll": last.entries if last else None,
            "events_last_poll": last.events if last else None,
            "consecutive_errors": health.fetch.consecutive_errors,
            "last_error": health.last_error,
            "stories": health.stories,
            "etag": health.fetch.etag,
            "last_modified": health.fetch.last_modified,
            "websub": websub if websub is not None else {"state": "off", "summary": "off"},
        },
    }
