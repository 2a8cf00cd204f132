"""What every HTTP response passes through: browser security headers, the per-address request
rate on the public REST routes, and 503 JSON while the store or the bus is down.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liveupdates.backends.availability import error_reason
from liveupdates.hub.core import Hub
from liveupdates.hub.limits import BACKEND_RETRY_AFTER, BAD_REQUEST_COST, Refused
from liveupdates.hub.rest import error_response

# The pages (/, /admin) load only their own scripts and styles, and open connections only to this
# origin (same host: 'self' covers ws:/wss: there too). Nothing may frame them.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Routes anyone may call as often as they like without a connection: the request rate applies.
RATE_LIMITED_PREFIXES = ("/v1/stories", "/v1/feeds", "/v1/devices", "/v1/push")


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is known to be over `limit` bytes (its
    Content-Length, or what has arrived): a client cannot make us hold more than `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class EdgeMiddleware:
    """Pure ASGI (it must not buffer SSE streams), in front of every route."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        public = scope["path"].startswith(RATE_LIMITED_PREFIXES)
        if public:
            try:
                self.hub.request_rate.check(client_address(scope), time.monotonic())
            except Refused as exc:
                await too_many(exc)(scope, receive, self._headers(send, scope, False))
                return
        await self.app(scope, receive, self._headers(send, scope, public))

    def _headers(self, send: Send, scope: Scope, public: bool) -> Send:
        hub = self.hub

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name.decode() not in headers:
                        message["headers"].append((name, value))
                if public:
                    status = message["status"]
                    if status == 400:
                        hub.request_rate.penalise(
                            client_address(scope), time.monotonic(), BAD_REQUEST_COST - 1
                        )
                    # A REST answer read the store: if it was down, it is back (a page or a
                    # static file says nothing about the store).
                    if status < 500:
                        hub.availability.answered()
            await send(message)

        return send_with_headers


def too_many(exc: Refused) -> JSONResponse:
    return error_response(
        429, "rate_limited", exc.message, headers={"Retry-After": str(exc.retry_after)}
    )


async def backend_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler: the store or the bus failed under a request (Redis down, SQLite locked)."""
    hub: Any = request.app.state.hub
    hub.availability.report(error_reason(exc))
    return error_response(
        503,
        "unavailable",
        "the service's store is unavailable; retry shortly",
        headers={"Retry-After": str(BACKEND_RETRY_AFTER)},
    )
