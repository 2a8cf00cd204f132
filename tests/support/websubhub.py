"""A WebSub hub on 127.0.0.1 for tests and the benchmark, following the W3C Recommendation.

- POST / with hub.mode=subscribe|unsubscribe, hub.topic, hub.callback (hub.secret,
  hub.lease_seconds): answered 202, then verified: GET callback?hub.mode=...&hub.topic=...&
  hub.challenge=<random>&hub.lease_seconds=<granted>; the subscription counts only if the
  callback answers 2xx with exactly the challenge.
- `deny = True`: subscribe requests are answered with GET callback?hub.mode=denied&hub.reason=...
- `lease_seconds = n`: the lease granted, whatever was asked (a short lease for renewal tests).
- `publish(topic, body)`: POSTs body to every verified, unexpired subscriber of `topic`, signed
  with X-Hub-Signature (`method=`), or badly signed (`bad_signature=True`); returns the statuses.

Fixture `websub_hub` (a started WebSubHub), or `async with WebSubHub() as hub:`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from liveupdates.websub.signature import sign
from tests.support.uvicorn_serving import bound_socket, serve_until_started


@dataclass
class HubRequest:
    mode: str
    topic: str
    callback: str
    secret: str | None
    lease_seconds: str | None
    at: float


@dataclass
class Verification:
    mode: str
    callback: str
    topic: str
    status: int
    confirmed: bool  # answered 2xx with the challenge
    at: float


@dataclass
class HubSubscription:
    callback: str
    topic: str
    secret: str | None
    expires_at: float
    verified_at: float = field(default_factory=time.time)


class WebSubHub:
    def __init__(self) -> None:
        self.deny = False
        self.lease_seconds: int | None = None
        self.requests: list[HubRequest] = []
        self.verifications: list[Verification] = []
        self.subscriptions: dict[tuple[str, str], HubSubscription] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.app = Starlette(routes=[Route("/", self._hub, methods=["POST"])])
        self._sock = bound_socket()
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.client = httpx.AsyncClient(timeout=10.0)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> WebSubHub:
        self._task = await serve_until_started(self.server, self._sock, "websub hub")
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        self._sock.close()
        await self.client.aclose()

    async def __aenter__(self) -> WebSubHub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the hub side ----------------------------------------------------------------------

    async def _hub(self, request: Request) -> Response:
        # The request body is application/x-www-form-urlencoded (WebSub §5.1).
        pairs = parse_qs((await request.body()).decode("utf-8", "replace"))
        form = {k: v[0] for k, v in pairs.items()}
        mode, topic, callback = (
            str(form.get("hub.mode", "")),
            str(form.get("hub.topic", "")),
            str(form.get("hub.callback", "")),
        )
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            return PlainTextResponse("bad request", status_code=400)
        secret = form.get("hub.secret")
        lease = form.get("hub.lease_seconds")
        self.requests.append(
            HubRequest(
                mode,
                topic,
                callback,
                str(secret) if secret is not None else None,
                str(lease) if lease is not None else None,
                time.time(),
            )
        )
        task = asyncio.create_task(
            self._verify(mode, topic, callback, str(secret) if secret else None, lease)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Response(status_code=202)

    async def _verify(
        self, mode: str, topic: str, callback: str, secret: str | None, lease: Any
    ) -> None:
        try:
            await self._verify_once(mode, topic, callback, secret, lease)
        except httpx.HTTPError:
            # An unreachable callback fails verification, as at a real hub.
            self.verifications.append(Verification(mode, callback, topic, 0, False, time.time()))

    async def _verify_once(
        self, mode: str, topic: str, callback: str, secret: str | None, lease: Any
    ) -> None:
        if mode == "subscribe" and self.deny:
            params = {"hub.mode": "denied", "hub.topic": topic, "hub.reason": "not allowed here"}
            response = await self.client.get(callback, params=params)
            self.verifications.append(
                Verification("denied", callback, topic, response.status_code, False, time.time())
            )
            return
        granted = self.lease_seconds or int(lease or 3600)
        challenge = secrets.token_urlsafe(24)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(granted)
        response = await self.client.get(callback, params=params)
        confirmed = 200 <= response.status_code < 300 and response.text == challenge
        self.verifications.append(
            Verification(mode, callback, topic, response.status_code, confirmed, time.time())
        )
        if not confirmed:
            return
        if mode == "subscribe":
            self.subscriptions[(callback, topic)] = HubSubscription(
                callback, topic, secret, time.time() + granted
            )
        else:
            self.subscriptions.pop((callback, topic), None)

    # -- what tests drive ------------------------------------------------------------------

    def active(self, topic: str) -> list[HubSubscription]:
        now = time.time()
        return [s for s in self.subscriptions.values() if s.topic == topic and s.expires_at > now]

    async def publish(
        self,
        topic: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml; charset=utf-8",
        method: str = "sha256",
        bad_signature: bool = False,
    ) -> list[int]:
        statuses = []
        for sub in self.active(topic):
            headers = {"Content-Type": content_type}
            if sub.secret:
                key = "not-the-secret" if bad_signature else sub.secret
                headers["X-Hub-Signature"] = sign(key, body, method)
            response = await self.client.post(sub.callback, content=body, headers=headers)
            statuses.append(response.status_code)
        return statuses


@pytest.fixture
async def websub_hub() -> AsyncIterator[WebSubHub]:
    hub = WebSubHub()
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
