"""The admin API under /v1/admin, and the admin page at /admin.

Every route has its full path, so the app adds them to its route list as they are:
`routes += admin_routes(settings, store, control) + admin_page_routes()`.
Handlers are thin: auth (auth.py), validation and views (feeds.py) are pure; this module reads
the request, talks to the store and the control, and writes the audit record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveupdates import metrics
from liveupdates.events import utcnow_iso
from liveupdates.feeds.config import SELF_PLACEHOLDER, derived_feed_id
from liveupdates.hub.edge import read_body
from liveupdates.models import FeedConfig, WebSubSubscription
from liveupdates.netguard import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import check_url_address
from liveupdates.ops.auth import AuthError, FailureThrottle, configured_tokens, token_name
from liveupdates.ops.control import Control, UnknownFeed
from liveupdates.ops.feeds import ApiError, changed_fields, feed_json, new_feed, patched_feed
from liveupdates.ops.openapi import openapi_schema
from liveupdates.settings import Settings
from liveupdates.store.base import Store
from liveupdates.store.websub import WebSubStore
from liveupdates.validate import is_decimal, valid_text
from liveupdates.websub.lease import websub_view

log = logging.getLogger("liveupdates.admin")

PREFIX = "/v1/admin"
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024
MAX_AUDIT_LIMIT = 1000

Handler = Callable[[Request, str], Awaitable[Response]]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="liveupdates-admin"'} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class AdminApi:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        control: Control,
        websub: WebSubStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.websub = websub  # None: no WebSub part (every feed shows "off")
        self.control = control
        self.tokens = configured_tokens(settings)
        self.policy = AddressPolicy.allowing(settings.fetch_allow_networks)
        self.failures = FailureThrottle()

    # -- plumbing ----------------------------------------------------------------------------

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            address = request.client.host if request.client else "unknown"
            now = time.monotonic()
            wait = self.failures.retry_after(address, now)
            if wait is not None:
                return JSONResponse(
                    {
                        "error": {
                            "code": "rate_limited",
                            "message": f"too many refused tokens; retry in {wait} s",
                        }
                    },
                    status_code=429,
                    headers={"Retry-After": str(wait)},
                )
            try:
                actor = token_name(self.tokens, request.headers.get("authorization"))
                return await handler(request, actor)
            except AuthError as exc:
                if exc.status == 401:
                    self.failures.failed(address, now)
                return error_response(exc.status, exc.code, exc.message)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message)

        return run

    async def _body(self, request: Request) -> Any:
        raw = await read_body(request, MAX_BODY_BYTES)
        if raw is None:
            raise ApiError(413, "too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None

    async def _health_json(self, feed_id: str) -> dict[str, Any]:
        health = await self.store.feed_health(feed_id)
        if health is None:
            raise ApiError(404, "not_found", f"no feed with id {feed_id!r}")
        sub = await self.websub.get(feed_id) if self.websub is not None else None
        return feed_json(health, self._websub_view(health.config, sub))

    def _websub_view(self, feed: FeedConfig, sub: WebSubSubscription | None) -> dict[str, Any]:
        return websub_view(
            sub, time.time(), enabled=bool(self.settings.public_url), opted_in=feed.websub
        )

    async def _audit(self, actor: str, action: str, feed_id: str, **details: Any) -> None:
        record = {"at": utcnow_iso(), "actor": actor, "action": action, "feed_id": feed_id}
        record.update(details)
        await self.store.append_audit(record)
        log.info(
            "admin %s: %s %s %s",
            actor,
            action,
            feed_id,
            details.get("after", ""),
            extra={"feed": feed_id, "actor": actor},
        )

    async def _check_address(self, url: str) -> None:
        """422 for a feed whose host resolves to refused addresses only: better said now than
        found in its health later. The fetcher's connect-time guard still checks every fetch."""
        if url.startswith(SELF_PLACEHOLDER):
            return  # the service's own address, which ops chose
        try:
            await check_url_address(url, self.policy, timeout=self.settings.fetch_connect_timeout)
        except AddressRefused as exc:
            raise ApiError(422, "refused_address", str(exc)) from None

    async def _changed(self) -> None:
        try:
            await self.control.feeds_changed()
        except Exception:
            # The change is stored; a worker that missed the notice re-reads the list when it
            # reconnects (RESYNC), or at its next start.
            log.exception("could not tell the schedulers that the feed list changed")

    # -- handlers ----------------------------------------------------------------------------

    async def list_feeds(self, request: Request, actor: str) -> Response:
        # One read for every feed's health and one for every subscription: the admin page asks
        # every few seconds per open tab.
        subs = {s.feed_id: s for s in await self.websub.subscriptions()} if self.websub else {}
        return JSONResponse(
            {
                "feeds": [
                    feed_json(h, self._websub_view(h.config, subs.get(h.config.id)))
                    for h in await self.store.feeds_health()
                ]
            }
        )

    async def create_feed(self, request: Request, actor: str) -> Response:
        body = await self._body(request)
        url = body.get("url") if isinstance(body, dict) else None
        # Only from a url new_feed will accept; it refuses the rest with a clear 400.
        default_id = derived_feed_id(url) if isinstance(url, str) and valid_text(url) else ""
        feed = new_feed(body, self.settings, await self.store.list_feeds(), default_id)
        await self._check_address(feed.url)
        await self.store.upsert_feed(feed)
        await self._audit(actor, "feed.create", feed.id, before=None, after=asdict(feed))
        await self._changed()
        return JSONResponse(
            await self._health_json(feed.id),
            status_code=201,
            headers={"Location": f"{PREFIX}/feeds/{feed.id}"},
        )

    async def get_feed(self, request: Request, actor: str) -> Response:
        return JSONResponse(await self._health_json(request.path_params["feed_id"]))

    async def patch_feed(self, request: Request, actor: str) -> Response:
        feed_id = request.path_params["feed_id"]
        body = await self._body(request)
        feed = await self.store.get_feed(feed_id)
        if feed is None:
            raise ApiError(404, "not_found", f"no feed with id {feed_id!r}")
        updated = patched_feed(feed, body, self.settings, await self.store.list_feeds())
        if updated.url != feed.url:
            await self._check_address(updated.url)
        before, after = changed_fields(feed, updated)
        if after:
            await self.store.upsert_feed(updated)
            await self._audit(actor, "feed.update", feed_id, before=before, after=after)
            await self._changed()
        return JSONResponse(await self._health_json(feed_id))

    async def delete_feed(self, request: Request, actor: str) -> Response:
        feed_id = request.path_params["feed_id"]
        feed = await self.store.get_feed(feed_id)
        if feed is None or not await self.store.delete_feed(feed_id):
            raise ApiError(404, "not_found", f"no feed with id {feed_id!r}")
        await self._audit(actor, "feed.delete", feed_id, before=asdict(feed), after=None)
        await self._changed()
        return JSONResponse({"deleted": feed_id})

    async def poll_feed(self, request: Request, actor: str) -> Response:
        feed_id = request.path_params["feed_id"]
        try:
            outcome = await self.control.poll_now(feed_id)
        except UnknownFeed:
            raise ApiError(404, "not_found", f"no feed with id {feed_id!r}") from None
        if outcome is None:
            # Web-only process: the poll was handed to the workers and none ended it in time.
            await self._audit(actor, "feed.poll", feed_id, result="requested")
            return JSONResponse(
                {"outcome": None, "feed": await self._health_json(feed_id)}, status_code=202
            )
        await self._audit(actor, "feed.poll", feed_id, result=outcome.status)
        return JSONResponse({"outcome": asdict(outcome), "feed": await self._health_json(feed_id)})

    async def audit(self, request: Request, actor: str) -> Response:
        raw = request.query_params.get("limit", "100")
        if not is_decimal(raw.strip()) or len(raw.strip()) > 9:
            raise ApiError(400, "bad_request", f"limit must be a whole number, got {raw[:40]!r}")
        limit = int(raw)
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise ApiError(422, "invalid_limit", f"limit must be between 1 and {MAX_AUDIT_LIMIT}")
        return JSONResponse({"audit": await self.store.list_audit(limit)})

    async def stats(self, request: Request, actor: str) -> Response:
        return JSONResponse(metrics.stats())


async def _openapi(request: Request) -> Response:
    # Public on purpose: it describes the API, it does not open it.
    return JSONResponse(openapi_schema())


async def _unknown(request: Request) -> Response:
    return error_response(
        404, "not_found", f"no admin endpoint {request.method} {request.url.path}"
    )


def admin_routes(
    settings: Settings, store: Store, control: Control, websub: WebSubStore | None = None
) -> list[BaseRoute]:
    """Every /v1/admin route, with full paths; `websub` (the backends' WebSub part) for the
    feeds' WebSub state."""
    api = AdminApi(settings, store, control, websub)
    e = api.endpoint
    feed = PREFIX + "/feeds/{feed_id}"
    return [
        Route(PREFIX + "/openapi.json", _openapi, methods=["GET"]),
        Route(PREFIX + "/feeds", e(api.list_feeds), methods=["GET"]),
        Route(PREFIX + "/feeds", e(api.create_feed), methods=["POST"]),
        Route(feed, e(api.get_feed), methods=["GET"]),
        Route(feed, e(api.patch_feed), methods=["PATCH"]),
        Route(feed, e(api.delete_feed), methods=["DELETE"]),
        Route(feed + "/poll", e(api.poll_feed), methods=["POST"]),
        Route(PREFIX + "/audit", e(api.audit), methods=["GET"]),
        Route(PREFIX + "/stats", e(api.stats), methods=["GET"]),
        Route(PREFIX + "/{rest:path}", _unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]


# -- the admin page ------------------------------------------------------------------------------


async def _page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "admin.html", media_type="text/html; charset=utf-8")


async def _script(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "admin.js", media_type="text/javascript; charset=utf-8")


async def _style(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "admin.css", media_type="text/css; charset=utf-8")


def admin_page_routes() -> list[BaseRoute]:
    """/admin (the page asks for the token itself; the data it shows come from the API)."""
    return [
        Route("/admin", _page, methods=["GET"]),
        Route("/admin/admin.js", _script, methods=["GET"]),
        Route("/admin/admin.css", _style, methods=["GET"]),
    ]
