"""Serving the public API's documents and their reference page.

GET /v1/openapi.json and /v1/asyncapi.json answer the generated documents; /docs is a small page
of our own (liveupdates/api/static: no CDN, no bundle) that renders both in the browser.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from liveupdates.api.asyncapi import asyncapi_json
from liveupdates.api.openapi import openapi_json

STATIC_DIR = Path(__file__).resolve().parent / "static"
_CACHE = {"Cache-Control": "no-cache"}


async def _openapi(request: Request) -> Response:
    return Response(openapi_json(), media_type="application/json", headers=_CACHE)


async def _asyncapi(request: Request) -> Response:
    return Response(asyncapi_json(), media_type="application/json", headers=_CACHE)


def _file(name: str, media_type: str) -> Route:
    async def serve(request: Request) -> Response:
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_CACHE)

    path = "/docs" if name == "docs.html" else f"/docs/{name}"
    return Route(path, serve, methods=["GET"])


def api_routes() -> list[BaseRoute]:
    return [
        Route("/v1/openapi.json", _openapi, methods=["GET"]),
        Route("/v1/asyncapi.json", _asyncapi, methods=["GET"]),
        _file("docs.html", "text/html; charset=utf-8"),
        _file("docs.js", "text/javascript; charset=utf-8"),
        _file("docs.css", "text/css; charset=utf-8"),
    ]
