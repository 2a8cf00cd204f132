"""The admin API's OpenAPI 3.1 description, written by hand next to the code it describes.

tests/test_admin_api.py checks that every route has a path here and every path here a route.
"""

from __future__ import annotations

from typing import Any

from liveupdates import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    """References to the shared error responses; every endpoint may answer 401, 429 and 503."""
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in (*codes, 401, 429, 503)}


_ID = {"name": "feed_id", "in": "path", "required": True, "schema": {"type": "string"}}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "FeedHealth": {
        "type": "object",
        "properties": {
            "status": {"enum": ["ok", "failing", "paused", "pending"]},
            "next_poll_at": {"type": ["string", "null"], "format": "date-time"},
            "last_poll_at": {"type": ["string", "null"], "format": "date-time"},
            "last_result": {"enum": ["ok", "not_modified", "error", None]},
            "last_http_status": {"type": ["integer", "null"]},
            "last_duration_ms": {"type": ["number", "null"]},
            "entries_last_poll": {"type": ["integer", "null"]},
            "events_last_poll": {"type": ["integer", "null"]},
            "consecutive_errors": {"type": "integer"},
            "last_error": {"type": ["string", "null"]},
            "stories": {"type": "integer", "description": "stories of this feed tracked"},
            "etag": {"type": ["string", "null"], "description": "validator in use"},
            "last_modified": {"type": ["string", "null"], "description": "validator in use"},
            "websub": _ref("WebSub"),
        },
    },
    "WebSub": {
        "type": "object",
        "description": "push subscription at the feed's WebSub hub (docs/websub.md)",
        "properties": {
            "state": {"enum": ["off", "pending", "active", "denied", "failed"]},
            "summary": {"type": "string", "description": "e.g. 'active until ...'"},
            "reason": {"type": ["string", "null"]},
            "hub": {"type": ["string", "null"]},
            "topic": {"type": ["string", "null"]},
            "active_until": {"type": ["string", "null"], "format": "date-time"},
            "last_push_at": {"type": ["string", "null"], "format": "date-time"},
            "pushes": {"type": "integer"},
            "bad_signatures": {"type": "integer"},
        },
    },
    "Feed": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "interval_seconds": {"type": "number"},
            "paused": {"type": "boolean"},
            "adaptive": {"type": "boolean"},
            "websub": {"type": "boolean"},
            "health": _ref("FeedHealth"),
        },
    },
    "NewFeed": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "description": "http or https"},
            "id": {
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                "description": "default: derived from the URL's host and a hash",
            },
            "title": {"type": ["string", "null"]},
            "interval_seconds": {
                "type": "number",
                "default": 60,
                "description": "within the poll.min_interval..poll.max_interval settings",
            },
            "paused": {"type": "boolean", "default": False},
            "adaptive": {"type": "boolean", "default": True},
            "websub": {"type": "boolean", "default": True},
        },
    },
    "FeedChange": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "interval_seconds": {"type": "number"},
            "paused": {"type": "boolean"},
            "adaptive": {"type": "boolean"},
            "websub": {"type": "boolean"},
        },
    },
    "PollOutcome": {
        "type": "object",
        "properties": {
            "feed_id": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "status": {"enum": ["ok", "not_modified", "error"]},
            "http_status": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "entries": {"type": "integer"},
            "events": {"type": "integer"},
            "duration_ms": {"type": "number"},
        },
    },
    "AuditRecord": {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string", "description": "name of the token used"},
            "action": {"enum": ["feed.create", "feed.update", "feed.delete", "feed.poll"]},
            "feed_id": {"type": "string"},
            "before": {"type": ["object", "null"], "description": "changed fields, old values"},
            "after": {"type": ["object", "null"], "description": "changed fields, new values"},
            "result": {
                "type": "string",
                "description": "feed.poll only: the poll's status, or requested (202)",
            },
        },
    },
    "Stats": {
        "type": "object",
        "properties": {
            "connected_clients": {"type": "integer"},
            "connected_by_transport": {"type": "object"},
            "updates_published_total": {"type": "integer"},
            "messages_sent_total": {"type": "integer"},
            "slow_clients_dropped_total": {"type": "integer"},
            "polls_total": {"type": "object"},
            "window_minutes": {"type": "integer"},
            "updates_published_per_minute": {"type": "array", "items": {"type": "object"}},
            "messages_sent_per_minute": {"type": "array", "items": {"type": "object"}},
        },
    },
}


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
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"feeds": {"type": "array", "items": _ref("Feed")}},
                            },
                            "The feeds, by id",
                        ),
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
                        "200": _json(
                            {"type": "object", "properties": {"deleted": {"type": "string"}}},
                            "Deleted",
                        ),
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
                            {
                                "type": "object",
                                "properties": {
                                    "outcome": _ref("PollOutcome"),
                                    "feed": _ref("Feed"),
                                },
                            },
                            "The poll's outcome (an error outcome is still a 200: the poll ran)",
                        ),
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "outcome": {"type": "null"},
                                    "feed": _ref("Feed"),
                                },
                            },
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
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "audit": {"type": "array", "items": _ref("AuditRecord")}
                                },
                            },
                            "Audit records",
                        ),
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
            "schemas": _SCHEMAS,
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
