"""REST endpoints: current state and history, for page loads and for clients that poll."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from liveupdates.api.models import (
    FeedsQuery,
    FeedStoriesQuery,
    StoryByUrlQuery,
    UpdatesQuery,
    VersionPath,
)
from liveupdates.api.params import parse
from liveupdates.backends.availability import error_reason
from liveupdates.feeds.identity import canonical_url
from liveupdates.hub.core import Hub, can_replay
from liveupdates.hub.protocol import update_message
from liveupdates.hub.state import (
    build_reset,
    feed_exists,
    feed_stories,
    story_document,
    story_json,
)
from liveupdates.models import feed_channel, story_channel
from liveupdates.validate import InvalidInput, plausible_id

# How long /healthz waits for the store and the bus to answer before calling them down.
HEALTH_TIMEOUT = 2.0

# The wording of the WebSocket protocol's refusal, for the same parameter here.
SINCE_MESSAGE = {"since": "since must be a non-negative integer (ASCII digits, 64-bit)"}
_CURSOR = "cursor is not one this server gave out"
_URL = {"url": "url must be the story's link: not blank, at most 4096 characters"}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The public API's error body (components/schemas/Error); `field` names the bad input."""
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _bad(exc: InvalidInput) -> JSONResponse:
    return error_response(400, "bad_request", str(exc))


def _not_found(message: str) -> JSONResponse:
    return error_response(404, "not_found", message)


def _hub(request: Request) -> Hub:
    return request.app.state.hub


async def get_story(request: Request) -> JSONResponse:
    story_id = request.path_params["story_id"]
    doc = await story_document(_hub(request).store, story_id)
    if doc is None:
        return _not_found(f"no story {story_id[:64]}")
    return JSONResponse(doc)


async def get_story_by_url(request: Request) -> JSONResponse:
    try:
        url = parse(StoryByUrlQuery, request.query_params, messages=_URL).url.strip()
    except InvalidInput as exc:
        return _bad(exc)
    try:
        canonical = canonical_url(url)
    except ValueError:
        canonical = url  # not a URL this server could have stored: looked up as given (404)
    hub = _hub(request)
    stored = await hub.store.story_by_url(canonical)
    if stored is None and canonical != url:
        stored = await hub.store.story_by_url(url)
    if stored is None:
        return _not_found("no story at that url")
    doc = await story_document(hub.store, stored.snapshot.id)
    if doc is None:  # pragma: no cover - stories are never deleted
        return _not_found("no story at that url")
    return JSONResponse(doc)


async def get_version(request: Request) -> JSONResponse:
    story_id = request.path_params["story_id"]
    raw = request.path_params["version"]
    try:
        version = parse(VersionPath, request.path_params).version
    except InvalidInput as exc:
        return _bad(exc)
    if not plausible_id(story_id):
        return _not_found(f"no story {story_id[:64]}")
    stored = await _hub(request).store.get_version(story_id, version)
    if stored is None:
        return _not_found(f"story {story_id} has no version {raw}")
    data = story_json(stored)
    data["at"] = stored.at
    return JSONResponse(data)


async def get_updates(request: Request) -> JSONResponse:
    """Updates after `since`, like a WebSocket replay; a reset when they cannot all be given."""
    story_id = request.path_params["story_id"]
    hub = _hub(request)
    try:
        query = parse(UpdatesQuery, request.query_params, messages=SINCE_MESSAGE)
    except InvalidInput as exc:
        return _bad(exc)
    since, epoch, limit = query.since, query.epoch, query.limit
    # Existence first, read-only: reading the channel's bounds may create its epoch.
    if not plausible_id(story_id) or await hub.store.latest(story_id) is None:
        return _not_found(f"no story {story_id[:64]}")
    channel = story_channel(story_id)
    bounds = await hub.bus.bounds(channel)
    body: dict[str, Any] = {"channel": channel, "seq": bounds.last, "epoch": bounds.epoch}
    # The replay cap does not apply: paging with `limit` bounds each response instead.
    entries = (
        await hub.bus.read_since(channel, since, min(limit, bounds.last - since))
        if can_replay(bounds, since, epoch, cap=bounds.last)
        else None
    )
    if entries is None or (entries and entries[0].seq != since + 1):
        # Not replayable, or trimmed between the two reads: the client starts over.
        body.update(
            updates=[],
            recovered=False,
            more=False,
            reset=await build_reset(hub.store, channel, bounds.last),
        )
        return JSONResponse(body)
    body["updates"] = [update_message(channel, e.seq, e.event) for e in entries]
    body["recovered"] = True
    body["more"] = bool(entries) and entries[-1].seq < bounds.last
    return JSONResponse(body)


async def get_feed_stories(request: Request) -> JSONResponse:
    feed_id = request.path_params["feed_id"]
    hub = _hub(request)
    try:
        limit = parse(FeedStoriesQuery, request.query_params).limit
    except InvalidInput as exc:
        return _bad(exc)
    stories = await feed_stories(hub.store, feed_id, limit) if plausible_id(feed_id) else []
    if not stories and not await feed_exists(hub.store, feed_id):
        return _not_found(f"no feed {feed_id[:64]}")
    return JSONResponse({"feed": feed_id, "stories": stories})


async def _check(name: str, ping: Any) -> str | None:
    """None when `ping()` answers in time, else why not (one line)."""
    try:
        await asyncio.wait_for(ping(), HEALTH_TIMEOUT)
    except TimeoutError:
        return f"{name} did not answer within {HEALTH_TIMEOUT:g} s"
    except Exception as exc:
        return f"{name} unavailable: {error_reason(exc)}"
    return None


def _encode_cursor(feed_id: str) -> str:
    return base64.urlsafe_b64encode(feed_id.encode()).rstrip(b"=").decode("ascii")


def _decode_cursor(raw: str) -> str:
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidInput(_CURSOR) from None


def _public_link(feed_url: str) -> str | None:
    """The publisher's site: the feed URL's origin. The full feed URL stays private: it may carry
    credentials or a key in its query."""
    parts = urlsplit(feed_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None  # e.g. the demo's "{self}" placeholder
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/"


async def get_feeds(request: Request) -> JSONResponse:
    """The public list of feeds, in pages: `limit` (1-200) and the `cursor` a page gave."""
    try:
        query = parse(FeedsQuery, request.query_params, messages={"cursor": _CURSOR})
        after = _decode_cursor(query.cursor) if query.cursor else None
    except InvalidInput as exc:
        if exc.args[0].startswith("cursor"):
            exc = InvalidInput(_CURSOR)
        return _bad(exc)
    limit = query.limit
    # One more than asked tells whether another page follows without a count.
    listing = await _hub(request).store.feed_listing(after, limit + 1)
    page = listing[:limit]
    feeds = [
        {
            "id": item.config.id,
            "title": item.config.title or item.config.id,
            "link": _public_link(item.config.url),
            "stories": item.stories,
            "last_update": item.last_update,
            "channel": feed_channel(item.config.id),
        }
        for item in page
    ]
    more = len(listing) > limit
    return JSONResponse(
        {"feeds": feeds, "next_cursor": _encode_cursor(page[-1].config.id) if more else None}
    )


async def healthz(request: Request) -> JSONResponse:
    """200 only when the store and the bus answer (a Redis PING in Redis mode) and the process
    is not shutting down; else 503 with the reasons. Load balancers and Procfile/container
    health checks can rely on it."""
    hub = _hub(request)
    problems = [
        p
        for p in (await _check("store", hub.store.ping), await _check("bus", hub.bus.ping))
        if p is not None
    ]
    if hub.shutting_down:
        status = "shutting_down"
    elif problems:
        status = "unavailable"
        hub.availability.report("; ".join(problems))
    else:
        status = "ok"
        hub.availability.answered()
    body: dict[str, Any] = {
        "status": status,
        "store": "down" if any(p.startswith("store") for p in problems) else "ok",
        "bus": "down" if any(p.startswith("bus") for p in problems) else "ok",
        "connections": len(hub.connections),
        "channels": len(hub.fanout.channels()),
    }
    if problems:
        body["reason"] = "; ".join(problems)
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


routes = [
    Route("/healthz", healthz),
    Route("/v1/stories", get_story_by_url),
    Route("/v1/stories/{story_id}", get_story),
    Route("/v1/stories/{story_id}/versions/{version}", get_version),
    Route("/v1/stories/{story_id}/updates", get_updates),
    Route("/v1/feeds", get_feeds),
    Route("/v1/feeds/{feed_id}/stories", get_feed_stories),
]
