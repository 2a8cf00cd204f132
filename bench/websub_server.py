"""The WebSub benchmark's half inside the hub process: pushes through the real callback.

Next to the end-to-end benchmark's poller (bench/e2e_server.py, same feed, same Ingestor), this
mounts the real WebSub callback (liveupdates/websub/callback.py) on the app, with a verified
subscription for the feed and pushes handed to a real FeedScheduler's `ingest_pushed`, as `serve` has.
Each `websub_push` plays the hub: it signs the next feed body and POSTs it to the callback over
loopback. `t0` is taken just before that POST, so the callback, the signature check, the hand-off,
parse, normalise, identity, diff, store, publish, fan-out and delivery all count. (The hub's
client runs in the server's own event loop, so its CPU counts against the server too.)
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from starlette.applications import Starlette

from bench.e2e_server import E2E
from liveupdates.models import WebSubSubscription
from liveupdates.store.websub import WebSubStore
from liveupdates.websub.callback import websub_routes
from liveupdates.websub.signature import sign
from liveupdates.websub.tokens import new_secret, new_token
from workers.poller import FeedScheduler

MAX_BODY = 10 * 1024 * 1024


class WebSubBench:
    def __init__(self, e2e: E2E, wstore: WebSubStore, app: Starlette, port: int) -> None:
        self.e2e = e2e
        self.wstore = wstore
        self.app = app
        self.base = f"http://127.0.0.1:{port}"
        self.client: httpx.AsyncClient | None = None
        self.sub: WebSubSubscription | None = None
        self.statuses: list[int] = []

    async def setup(self, args: dict[str, Any]) -> dict[str, Any]:
        """After e2e_setup: a verified subscription for its feed and the callback on the app."""
        assert self.e2e.ingestor is not None and self.e2e.feed is not None
        # No jobs (never synced, never started): the phase-1 polls stay the rig's own, and a push
        # still takes the scheduler's path (the stored feed, its lock and its claim).
        scheduler = FeedScheduler(self.e2e.ingestor)
        feed_id = self.e2e.feed.id
        self.sub = WebSubSubscription(
            feed_id=feed_id,
            hub="http://127.0.0.1:9/",
            topic=self.e2e.feed.url,
            secret=new_secret(),
            token=new_token(feed_id),
            state="active",
            lease_seconds=86400,
            expires_at=time.time() + 86400,
        )
        await self.wstore.put(self.sub)
        routes = websub_routes(
            self.wstore,
            self.e2e.store,
            max_body_bytes=MAX_BODY,
            local=lambda: scheduler.ingest_pushed,
        )
        self.app.router.routes[0:0] = routes
        self.client = httpx.AsyncClient(timeout=30)
        return {"callback": f"{self.base}/v1/websub/{self.sub.token}"}

    async def push(self, args: dict[str, Any]) -> dict[str, Any]:
        """Play the hub for one new feed body (hex of the bytes in args["body"])."""
        assert self.client is not None and self.sub is not None and self.e2e.fetcher is not None
        body = bytes.fromhex(args["body"])
        headers = {
            "Content-Type": "application/rss+xml",
            "X-Hub-Signature": sign(self.sub.secret, body, "sha256"),
        }
        url = f"{self.base}/v1/websub/{self.sub.token}"
        # E2E stamps events with its fetcher's fetch_end: for a push that is the hub's POST.
        self.e2e.fetcher.fetch_end = time.time()
        started = time.perf_counter()
        response = await self.client.post(url, content=body, headers=headers)
        self.statuses.append(response.status_code)
        return {"status": response.status_code, "post_ms": (time.perf_counter() - started) * 1000}

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
