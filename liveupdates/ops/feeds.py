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
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from liveupdates.api.params import convert_body, field_message
from liveupdates.feeds.config import FEED_ID_RE, FeedError, check_interval, check_url
from liveupdates.models import FeedConfig, FeedHealth
from liveupdates.ops.models import MAX_TEXT, FeedChange, NewFeed
from liveupdates.settings import Settings
from liveupdates.validate import InvalidInput, check_text, parse_number

PATCH_FIELDS = ("url", "title", "interval_seconds", "paused", "adaptive", "websub")


T = TypeVar("T", bound=msgspec.Struct)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _decode(body: Any, model: type[T]) -> T:
    """The body as `model` (ops/models.py): a JSON object of known fields and JSON types, then the
    edge checks of validate.py (no lone surrogates, finite bounded numbers)."""
    try:
        data = convert_body(body, model)
        for name in ("url", "id", "title"):
            value = getattr(data, name, None)
            if isinstance(value, str):
                check_text(value, name, max_length=MAX_TEXT)
        interval = getattr(data, "interval_seconds", UNSET)
        if not isinstance(interval, UnsetType):
            parse_number(interval, "interval_seconds (seconds)")
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad_request", _wording(exc)) from None
    except InvalidInput as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return data


def _wording(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `bool`, got `str` - at `$.paused`" as "paused: expected ..."."""
    text = str(exc)
    if text.startswith("Object contains unknown field"):
        return f"{text} (allowed: {', '.join(PATCH_FIELDS)}, and id when adding)"
    if text.startswith("Expected `object`"):
        return "the body must be a JSON object"
    return field_message(exc)


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
    data = _decode(body, NewFeed)
    feed_id = default_id if isinstance(data.id, UnsetType) else data.id
    if not FEED_ID_RE.fullmatch(feed_id):
        raise ApiError(
            422,
            "invalid_id",
            "id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    feed = FeedConfig(
        id=feed_id,
        url=_url(data.url),
        interval_seconds=_interval(data.interval_seconds, settings),
        title=data.title,
        paused=data.paused,
        adaptive=data.adaptive,
        websub=data.websub,
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
    data = _decode(body, FeedChange)
    given = {
        f: getattr(data, f) for f in PATCH_FIELDS if not isinstance(getattr(data, f), UnsetType)
    }
    if not given:
        raise ApiError(400, "bad_request", f"nothing to change (fields: {', '.join(PATCH_FIELDS)})")
    changes: dict[str, Any] = dict(given)
    if "url" in given:
        changes["url"] = _url(given["url"])
        _check_unique_url(changes["url"], feed.id, existing)
    if "interval_seconds" in given:
        changes["interval_seconds"] = _interval(given["interval_seconds"], settings)
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
