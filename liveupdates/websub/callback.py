"""The callback hubs call: GET (verification of intent, WebSub §5.3) and POST (content, §7-8).

Mounted at /v1/websub/{token} by every web process. Nothing here ingests: a verified body is
handed to this process's scheduler (`FeedScheduler.ingest_pushed`, in `serve`) when `local`
names one, or else (a `web` process, which has no scheduler) put on the store's push queue for
a worker. Either way the hub gets its answer at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from liveupdates import metrics
from liveupdates.events import utcnow_iso
from liveupdates.hub.edge import read_body
from liveupdates.models import MAX_REASON, FeedConfig, PushedBody, WebSubSubscription
from liveupdates.store.base import Store
from liveupdates.store.websub import WebSubStore
from liveupdates.websub.signature import valid_signature
from liveupdates.websub.tokens import same_token, token_feed

log = logging.getLogger("liveupdates.websub")

PATH = "/v1/websub/{token}"


class Deliver(Protocol):
    """`FeedScheduler.ingest_pushed`: `feed` is the feed's config when the caller has read it."""

    def __call__(
        self,
        feed_id: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        feed: FeedConfig | None = None,
    ) -> Awaitable[Any]: ...


# This process's scheduler's ingest_pushed, when one runs here now; else None.
LocalIngest = Callable[[], Deliver | None]

MAX_CHALLENGE = 1024
MAX_LEASE_SECONDS = 10 * 365 * 86400
# Only what parsing needs travels with a pushed body.
_KEPT_HEADERS = ("content-type", "content-location")


def _not_found() -> Response:
    return PlainTextResponse("not found", status_code=404)


def _clean(value: str | None, limit: int) -> str | None:
    """Printable text for the store and the logs, or None."""
    if not value:
        return None
    text = "".join(
        ch for ch in value[:limit] if ch.isprintable() and not 0xD800 <= ord(ch) < 0xE000
    )
    return text or None


def _lease(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 12:
        return None
    seconds = int(value)
    return seconds if 0 < seconds <= MAX_LEASE_SECONDS else None


class Callback:
    def __init__(
        self,
        wstore: WebSubStore,
        store: Store,
        *,
        max_body_bytes: int,
        local: LocalIngest | None = None,
    ) -> None:
        self.wstore = wstore
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.local = local
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _subscription(self, request: Request) -> WebSubSubscription | None:
        return (await self._target(request))[0]

    async def _target(
        self, request: Request
    ) -> tuple[WebSubSubscription | None, FeedConfig | None]:
        """The subscription the token names (None unless the token is its own) and its feed."""
        token = request.path_params["token"]
        feed_id = token_feed(token)
        if feed_id is None:
            return None, None
        sub, feed = await self.wstore.push_target(feed_id)
        if sub is None or not same_token(sub.token, token):
            return None, None
        return sub, feed

    async def _audit(self, action: str, sub: WebSubSubscription, **details: Any) -> None:
        record = {"at": utcnow_iso(), "actor": "websub-hub", "action": action}
        record.update(feed_id=sub.feed_id, hub=sub.hub, topic=sub.topic, **details)
        await self.store.append_audit(record)

    # -- verification of intent ------------------------------------------------------------

    async def verify(self, request: Request) -> Response:
        sub = await self._subscription(request)
        if sub is None:
            return _not_found()
        params = request.query_params
        mode = params.get("hub.mode")
        if params.get("hub.topic") != sub.topic:
            return _not_found()
        if mode == "denied":
            if sub.state not in ("pending", "active"):
                return _not_found()
            sub.state, sub.expires_at = "denied", None
            sub.reason = _clean(params.get("hub.reason"), MAX_REASON) or "the hub refused"
            await self.wstore.put(sub)
            metrics.websub_event("denied")
            await self._audit("websub.denied", sub, reason=sub.reason)
            log.info("websub: hub %s denied feed %s: %s", sub.hub, sub.feed_id, sub.reason)
            return PlainTextResponse("")
        challenge = params.get("hub.challenge")
        if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isascii():
            return _not_found()
        if mode == "subscribe" and sub.state in ("pending", "active"):
            lease = _lease(params.get("hub.lease_seconds")) or sub.lease_seconds
            renewal = sub.state == "active"
            sub.state, sub.reason = "active", None
            sub.lease_seconds, sub.expires_at = lease, time.time() + lease
            await self.wstore.put(sub)
            metrics.websub_event("renewed" if renewal else "verified")
            if not renewal:
                await self._audit("websub.subscribed", sub, lease_seconds=lease)
            return PlainTextResponse(challenge)
        if mode == "unsubscribe" and sub.state == "unsubscribing":
            # Only an unsubscribe this service asked for: a third party cannot cancel ours.
            await self.wstore.delete(sub.feed_id)
            metrics.websub_event("unsubscribed")
            await self._audit("websub.unsubscribed", sub)
            return PlainTextResponse(challenge)
        return _not_found()

    # -- content distribution --------------------------------------------------------------

    async def content(self, request: Request) -> Response:
        # The subscription and the feed's config in one store read: a push makes no other store
        # call before its ingest starts (the count below runs beside it).
        sub, feed = await self._target(request)
        if sub is None or sub.state not in ("active", "pending"):
            metrics.websub_push("unknown")
            # 410 tells a hub to drop a subscription we do not have (WebSub §7).
            return PlainTextResponse("gone", status_code=410)
        try:
            body = await read_body(request, self.max_body_bytes)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            metrics.websub_push("too_large")
            return PlainTextResponse(f"body exceeds {self.max_body_bytes} bytes", status_code=413)
        if not valid_signature(sub.secret, body, request.headers.get("x-hub-signature")):
            # 2xx as WebSub §8 allows, so a forger learns nothing; counted, never ingested.
            metrics.websub_push("bad_signature")
            await self.wstore.record_push(sub.feed_id, valid=False, at=utcnow_iso())
            log.warning("websub: push for feed %s with a bad or missing signature", sub.feed_id)
            return Response(status_code=202)
        metrics.websub_push("ok")
        headers = {k: request.headers[k] for k in _KEPT_HEADERS if k in request.headers}
        deliver = self.local() if self.local is not None else None
        if deliver is not None:
            # Handed on before the count is written: the ingest does not wait for that write.
            task = asyncio.create_task(self._deliver(deliver, sub.feed_id, body, headers, feed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            await self.wstore.enqueue_push(PushedBody(sub.feed_id, body, headers, time.time()))
        await self.wstore.record_push(sub.feed_id, valid=True, at=utcnow_iso())
        return Response(status_code=202)

    async def _deliver(
        self,
        deliver: Deliver,
        feed_id: str,
        body: bytes,
        headers: Mapping[str, str],
        feed: FeedConfig | None,
    ) -> None:
        try:
            await deliver(feed_id, body, headers, feed=feed)
        except Exception:
            # The safety-net poll picks the change up; the hub already has its answer.
            log.exception("websub: ingesting a push for feed %s failed", feed_id)


def websub_routes(
    wstore: WebSubStore, store: Store, *, max_body_bytes: int, local: LocalIngest | None = None
) -> list[BaseRoute]:
    callback = Callback(wstore, store, max_body_bytes=max_body_bytes, local=local)
    return [
        Route(PATH, callback.verify, methods=["GET"]),
        Route(PATH, callback.content, methods=["POST"]),
    ]
