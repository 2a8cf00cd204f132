"""REST endpoints: current state and history, for page loads and for clients that poll."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from liveupdates.feeds.identity import canonical_url
from liveupdates.hub.core import Hub, can_replay
from liveupdates.hub.protocol import ProtocolError, parse_epoch, parse_since, update_message
from liveupdates.hub.state import (
    FEED_STORIES_LIMIT,
    build_reset,
    feed_exists,
    feed_stories,
    story_document,
    story_json,
)
from liveupdates.models import story_channel
from liveupdates.validate import InvalidInput, parse_int, plausible_id

# How long /healthz waits for the store and the bus to answer before calling them down.
HEALTH_TIMEOUT = 2.0

DEFAULT_UPDATES_LIMIT = 100
MAX_UPDATES_LIMIT = 1000


class BadParameter(ValueError):
    pass


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _not_found(message: str) -> JSONResponse:
    return error_response(404, "not_found", message)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_int(raw, name, low=low, high=high)
    except InvalidInput as exc:
        raise BadParameter(str(exc)) from None


def _hub(request: Request) -> Hub:
    return request.app.state.hub


async def get_story(request: Request) -> JSONResponse:
    story_id = request.path_params["story_id"]
    doc = await story_document(_hub(request).store, story_id)
    if doc is None:
        return _not_found(f"no story {story_id[:64]}")
    return JSONResponse(doc)


async def get_story_by_url(request: Request) -> JSONResponse:
    url = request.query_params.get("url", "").strip()
    if not url:
        return error_response(400, "bad_request", "url is required")
    try:
        canonical = canonical_url(url)
    except ValueError:
        return error_response(400, "bad_request", "url is not a valid URL")
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
        version = parse_int(raw, "version", low=1)
    except InvalidInput as exc:
        return error_response(400, "bad_request", str(exc))
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
        since = parse_since(request.query_params.get("since", "0") or "0")
        epoch = parse_epoch(request.query_params.get("epoch"))
        limit = _int_param(request, "limit", DEFAULT_UPDATES_LIMIT, 1, MAX_UPDATES_LIMIT)
    except (ProtocolError, BadParameter) as exc:
        return error_response(400, "bad_request", str(exc))
    assert since is not None
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
        limit = _int_param(request, "limit", FEED_STORIES_LIMIT, 1, 1000)
    except BadParameter as exc:
        return error_response(400, "bad_request", str(exc))
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
        return f"{name} unavailable: {type(exc).__name__}: {str(exc)[:200]}"
    return None


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
        hub.backend_down("; ".join(problems))
    else:
        status = "ok"
        hub.backend_up()
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
    Route("/v1/feeds/{feed_id}/stories", get_feed_stories),
]
