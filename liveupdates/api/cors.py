"""CORS for the public REST and SSE routes, from the same allow-list as WebSocket Origins.

A page on the newsroom's own site (hub.allowed_origins) may call /v1/stories..., /v1/feeds...,
/v1/sse, the device push routes and the documents from its readers' browsers. An empty list allows
any origin, as it does for /v1/ws. The admin API, the pages and /metrics get no CORS headers.
Starlette's CORSMiddleware does the work; this only chooses the routes it applies to.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PREFIXES = (
    "/v1/stories",
    "/v1/feeds",
    "/v1/sse",
    "/v1/devices",
    "/v1/push/",
    "/v1/openapi.json",
    "/v1/asyncapi.json",
    "/healthz",
)
METHODS = ["GET", "POST", "PUT", "DELETE"]
# Authorization: device secrets; Last-Event-ID: a client resuming SSE by itself.
HEADERS = ["Authorization", "Content-Type", "Last-Event-ID"]
PREFLIGHT_MAX_AGE = 600


def allowed(origins: Iterable[str]) -> list[str]:
    """Origins as CORSMiddleware takes them: normalised, and ["*"] for an empty list."""
    listed = [o.strip().rstrip("/").lower() for o in origins if o.strip()]
    return ["*"] if not listed or "*" in listed else listed


class PublicCORS:
    """Pure ASGI: CORS on the public routes only (SSE streams pass through unbuffered)."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=allowed(origins),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            expose_headers=["Retry-After"],
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PUBLIC_PREFIXES):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
