"""The admin API's OpenAPI 3.1 description: the paths written here, every schema generated from
the models in ops/models.py (the ones ops/feeds.py decodes request bodies with).

tests/test_admin_api.py checks that every route has a path here and every path here a route.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from liveupdates import __version__
from liveupdates.api.models import Error
from liveupdates.ops import models


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    """References to the shared error responses; every endpoint may answer 401, 429 and 503."""
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in (*codes, 401, 429, 503)}


_ID = {"name": "feed_id", "in": "path", "required": True, "schema": {"type": "string"}}

# Every schema comes from a model: the bodies ops/feeds.py decodes and the answers it builds.
_MODELS = (
    Error,
    models.Feed,
    models.FeedList,
    models.NewFeed,
    models.FeedChange,
    models.Deleted,
    models.Polled,
    models.PollRequested,
    models.AuditList,
    models.Stats,
)


@cache
def _schemas() -> dict[str, Any]:
    return msgspec.json.schema_components(_MODELS, ref_template="#/components/schemas/{name}")[1]


def openapi_schema() -> dict[str, Any]:
    feed = _json(_ref("Feed"), "The feed with its health")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "liveupdates admin API",
            "version": __version__,
            "description": "Feeds, poll schedules and health. See docs/admin-api.md.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/admin/feeds": {
                "get": {
                    "summary": "Every feed with its health",
                    "responses": {
                        "200": _json(_ref("FeedList"), "The feeds, by id"),
                        **_errors(),
                    },
                },
                "post": {
                    "summary": "Add a feed (polled at once unless paused)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewFeed")}},
                    },
                    "responses": {"201": feed, **_errors(400, 409, 413, 422)},
                },
            },
            "/v1/admin/feeds/{feed_id}": {
                "parameters": [_ID],
                "get": {
                    "summary": "One feed with its health",
                    "responses": {"200": feed, **_errors(404)},
                },
                "patch": {
                    "summary": "Change interval, pause/resume, url, title or adaptive mode; acts at once",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("FeedChange")}},
                    },
                    "responses": {"200": feed, **_errors(400, 404, 409, 413, 422)},
                },
                "delete": {
                    "summary": "Stop polling and forget the feed (its stories and logs stay)",
                    "responses": {
                        "200": _json(_ref("Deleted"), "Deleted"),
                        **_errors(404),
                    },
                },
            },
            "/v1/admin/feeds/{feed_id}/poll": {
                "parameters": [_ID],
                "post": {
                    "summary": "Poll the feed now (even when paused) and answer the outcome",
                    "responses": {
                        "200": _json(
                            _ref("Polled"),
                            "The poll's outcome (an error outcome is still a 200: the poll ran)",
                        ),
                        "202": _json(
                            _ref("PollRequested"),
                            "Web-only process: the poll was requested from the workers and"
                            " none ended it in time; a worker polls the feed when it can",
                        ),
                        **_errors(404),
                    },
                },
            },
            "/v1/admin/audit": {
                "get": {
                    "summary": "Recorded changes, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 1000,
                                "default": 100,
                            },
                        }
                    ],
                    "responses": {
                        "200": _json(_ref("AuditList"), "Audit records"),
                        **_errors(400, 422),
                    },
                },
            },
            "/v1/admin/stats": {
                "get": {
                    "summary": "Connected readers and updates in the last minutes (this process)",
                    "responses": {"200": _json(_ref("Stats"), "Counters"), **_errors()},
                },
            },
            "/v1/admin/push": {
                "get": {
                    "summary": "Device push: devices per platform, sent / failed / removed per"
                    " provider, queue depth and oldest pending age (every process; docs/push.md)",
                    "responses": {"200": {"description": "Push status"}, **_errors()},
                },
            },
            "/v1/admin/openapi.json": {
                "get": {
                    "summary": "This document (no token needed)",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                },
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
            "responses": {
                f"E{code}": _json(_ref("Error"), text)
                for code, text in {
                    400: "Malformed request",
                    401: "Missing or wrong bearer token (WWW-Authenticate: Bearer)",
                    404: "No such feed",
                    409: "Duplicate id or url",
                    413: "Body over 64 KiB",
                    422: "Value not acceptable (out of bounds, malformed id, refused address)",
                    429: "Too many refused tokens from this address; see Retry-After",
                    503: "Admin API disabled (no token configured), or the store is unavailable",
                }.items()
            },
        },
    }
