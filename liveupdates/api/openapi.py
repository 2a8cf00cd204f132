"""The public API's OpenAPI 3.1 document, generated from the models. Pure.

`OPERATIONS` is the table of public HTTP routes; every schema in the document comes from a msgspec
Struct through `msgspec.json.schema_components`, so the document says what the code validates and
answers. The admin API keeps its own document at /v1/admin/openapi.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import msgspec

from liveupdates import __version__
from liveupdates.api import examples, models, push

REF = "#/components/schemas/{name}"


@dataclass(frozen=True)
class Answer:
    description: str
    model: Any = None  # a Struct (or union of Structs); None: no body
    example: Any = None
    media: str = "application/json"
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    answers: dict[int, Answer]
    query: type[msgspec.Struct] | None = None
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    body: Any = None
    body_required: bool = True
    body_examples: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    bearer: bool = False


_ERR = models.Error
BAD = Answer("A bad parameter (numbers are ASCII digits below 2^63)", _ERR, examples.BAD_REQUEST)
LIMITED = Answer(
    "Too many requests from this address; wait Retry-After seconds", _ERR, headers=("Retry-After",)
)
UNAVAILABLE = Answer(
    "The store (Redis or SQLite) cannot be reached; retry after Retry-After seconds",
    _ERR,
    headers=("Retry-After",),
)
UNAUTHORISED = Answer("Missing or wrong device secret (Authorization: Bearer <secret>)", _ERR)
NOT_FOUND = Answer("No such story, feed or device", _ERR, examples.NOT_FOUND)
# Every public REST route: rate limited per address, and needs the store.
COMMON = {429: LIMITED, 503: UNAVAILABLE}

STORY_ID = {"description": "a story id (16 characters [a-z2-7])", "schema": {"type": "string"}}
FEED_ID = {"description": "a feed id", "schema": {"type": "string"}}
DEVICE_ID = {"description": "device_id from POST /v1/devices", "schema": {"type": "string"}}
CHANNEL = {"description": "story:<id> or feed:<id>", "schema": {"$ref": REF.format(name="Channel")}}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/v1/stories/{story_id}",
        "The current snapshot of a story and where its channel stands",
        "stories",
        {200: Answer("The story", models.StoryDocument, examples.STORY), 404: NOT_FOUND, **COMMON},
        path_params={"story_id": STORY_ID},
        description="Subscribe with since = seq and epoch to receive exactly what comes after.",
    ),
    Operation(
        "get",
        "/v1/stories",
        "The story whose link is this URL (canonicalised first)",
        "stories",
        {
            200: Answer("The story", models.StoryDocument, examples.STORY),
            400: BAD,
            404: NOT_FOUND,
            **COMMON,
        },
        query=models.StoryByUrlQuery,
    ),
    Operation(
        "get",
        "/v1/stories/{story_id}/versions/{version}",
        "One past version of a story, with the time it was stored",
        "stories",
        {
            200: Answer("The version", models.VersionDocument, examples.VERSION),
            400: BAD,
            404: NOT_FOUND,
            **COMMON,
        },
        path_params={"story_id": STORY_ID, "version": {"model": models.VersionPath}},
    ),
    Operation(
        "get",
        "/v1/stories/{story_id}/updates",
        "The story's updates after since, in pages (a reset when they cannot all be given)",
        "stories",
        {
            200: Answer("Updates, or a reset", models.UpdatesPage, examples.UPDATES),
            400: BAD,
            404: NOT_FOUND,
            **COMMON,
        },
        query=models.UpdatesQuery,
        path_params={"story_id": STORY_ID},
    ),
    Operation(
        "get",
        "/v1/feeds",
        "Every feed (id, title, link, story count, last update), in pages",
        "feeds",
        {200: Answer("A page of feeds", models.FeedsPage, examples.FEEDS), 400: BAD, **COMMON},
        query=models.FeedsQuery,
    ),
    Operation(
        "get",
        "/v1/feeds/{feed_id}/stories",
        "A feed's current stories, most recently changed first",
        "feeds",
        {
            200: Answer("The stories", models.FeedStories, examples.FEED_STORIES),
            400: BAD,
            404: NOT_FOUND,
            **COMMON,
        },
        query=models.FeedStoriesQuery,
        path_params={"feed_id": FEED_ID},
    ),
    Operation(
        "get",
        "/v1/sse",
        "One channel as Server-Sent Events (messages: /v1/asyncapi.json)",
        "streams",
        {
            200: Answer(
                "An endless text/event-stream: subscribed, update, reset and close events whose"
                " data is the JSON of the WebSocket messages (see /v1/asyncapi.json)",
                media="text/event-stream",
            ),
            400: BAD,
            403: Answer("The Origin header is not in hub.allowed_origins", _ERR),
            404: Answer("No such channel", _ERR),
            429: Answer(
                "Over a connection limit, or too many requests", _ERR, headers=("Retry-After",)
            ),
            503: UNAVAILABLE,
        },
        query=models.SSEQuery,
    ),
    Operation(
        "get",
        "/healthz",
        "Whether the store and the bus answer and the process is not shutting down",
        "health",
        {
            200: Answer("Healthy", models.Health, examples.HEALTH),
            503: Answer("Not healthy: reason says why", models.Health),
        },
    ),
    Operation(
        "get",
        "/v1/openapi.json",
        "This document",
        "documents",
        {200: Answer("OpenAPI 3.1")},
    ),
    Operation(
        "get",
        "/v1/asyncapi.json",
        "The WebSocket and SSE messages, as an AsyncAPI 3 document",
        "documents",
        {200: Answer("AsyncAPI 3.0")},
    ),
    Operation(
        "get",
        "/v1/push/vapid-public-key",
        "The VAPID public key for pushManager.subscribe (applicationServerKey)",
        "push",
        {200: Answer("The key", push.VapidPublicKey, examples.VAPID), **COMMON},
    ),
    Operation(
        "post",
        "/v1/devices",
        "Register a device for push notifications (Web Push, APNs or FCM)",
        "push",
        {
            201: Answer("Registered", push.DeviceRegistered, examples.REGISTERED),
            400: Answer(
                "Bad shape, undecodable keys, an endpoint host that is not allowed, or a platform"
                " whose provider is not configured; the message names the field",
                _ERR,
            ),
            429: Answer(
                "Over push.register_per_minute from this address", _ERR, headers=("Retry-After",)
            ),
            503: UNAVAILABLE,
        },
        body=push.DeviceRegistration,
        body_examples={
            "webpush": examples.WEBPUSH_REGISTRATION,
            "apns": examples.APNS_REGISTRATION,
            "fcm": examples.FCM_REGISTRATION,
        },
        description="Registering the same endpoint or token again returns the same device_id"
        " with a new secret; the old secret stops working.",
    ),
    Operation(
        "delete",
        "/v1/devices/{device_id}",
        "Forget the device and all its subscriptions",
        "push",
        {204: Answer("Gone"), 401: UNAUTHORISED, 404: NOT_FOUND, **COMMON},
        path_params={"device_id": DEVICE_ID},
        bearer=True,
    ),
    Operation(
        "get",
        "/v1/devices/{device_id}/subscriptions",
        "The channels the device follows",
        "push",
        {
            200: Answer(
                "Subscriptions",
                push.DeviceSubscriptions,
                push.DeviceSubscriptions([examples.SUBSCRIPTION]),
            ),
            401: UNAUTHORISED,
            404: NOT_FOUND,
            **COMMON,
        },
        path_params={"device_id": DEVICE_ID},
        bearer=True,
    ),
    Operation(
        "put",
        "/v1/devices/{device_id}/subscriptions/{channel}",
        "Follow a story or a feed (notify major, the default, or all)",
        "push",
        {
            200: Answer("Following", push.DeviceSubscription, examples.SUBSCRIPTION),
            400: BAD,
            401: UNAUTHORISED,
            404: Answer("No such device or channel", _ERR),
            409: Answer("The device follows push.max_subscriptions channels already", _ERR),
            **COMMON,
        },
        path_params={"device_id": DEVICE_ID, "channel": CHANNEL},
        body=push.SubscriptionRequest,
        body_required=False,
        body_examples={"all": push.SubscriptionRequest("all")},
        bearer=True,
    ),
    Operation(
        "delete",
        "/v1/devices/{device_id}/subscriptions/{channel}",
        "Stop following a channel",
        "push",
        {
            204: Answer("Not following"),
            400: BAD,
            401: UNAUTHORISED,
            404: NOT_FOUND,
            **COMMON,
        },
        path_params={"device_id": DEVICE_ID, "channel": CHANNEL},
        bearer=True,
    ),
)


def _component_types() -> list[Any]:
    types: list[Any] = [models.Error]
    for op in OPERATIONS:
        types.extend(a.model for a in op.answers.values() if a.model is not None)
        if op.body is not None:
            types.append(op.body)
        if op.query is not None:
            types.append(op.query)
        types.extend(p["model"] for p in op.path_params.values() if "model" in p)
    return list(dict.fromkeys(types))


def _parameters(op: Operation, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, spec in op.path_params.items():
        if "model" in spec:
            model = components[spec["model"].__name__]
            schema = model["properties"][name]
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        else:
            params.append({"name": name, "in": "path", "required": True, **spec})
    if op.query is not None:
        model = components[op.query.__name__]
        required = set(model.get("required", ()))
        for name, prop in model["properties"].items():
            schema = _not_null(prop)
            param = {"name": name, "in": "query", "required": name in required, "schema": schema}
            if "description" in schema:
                param["description"] = schema["description"]
            params.append(param)
    if op.path == "/v1/sse":
        params.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "sent by EventSource on reconnect; takes precedence over since",
                "schema": _not_null(components[models.SSEQuery.__name__]["properties"]["since"]),
            }
        )
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: `X | None` is X (with the default kept)."""
    members = [m for m in schema.get("anyOf", ()) if m != {"type": "null"}]
    if len(members) != 1:
        return schema
    merged = {**members[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
    if schema.get("default") is not None:
        merged["default"] = schema["default"]
    return merged


def _answer(answer: Answer, schemas: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        out["headers"] = {
            h: {"description": "seconds", "schema": {"type": "string", "pattern": "^[0-9]+$"}}
            for h in answer.headers
        }
    if answer.model is not None:
        media: dict[str, Any] = {"schema": schemas[answer.model]}
        if answer.example is not None:
            media["example"] = msgspec.to_builtins(answer.example)
        out["content"] = {answer.media: media}
    elif answer.media != "application/json":
        out["content"] = {answer.media: {"schema": {"type": "string"}}}
    return out


@cache
def _document() -> bytes:
    types = _component_types()
    type_schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schemas = dict(zip(types, type_schemas, strict=True))
    channel = msgspec.json.schema_components([models.SSEQuery], ref_template=REF)[1]
    components["Channel"] = channel["SSEQuery"]["properties"]["channel"]
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
            "tags": [op.tag],
            "parameters": _parameters(op, components),
            "responses": {str(code): _answer(a, schemas) for code, a in op.answers.items()},
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            content: dict[str, Any] = {"schema": schemas[op.body]}
            if op.body_examples:
                content["examples"] = {
                    k: {"value": msgspec.to_builtins(v)} for k, v in op.body_examples.items()
                }
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": content},
            }
        if op.bearer:
            entry["security"] = [{"deviceSecret": []}]
        if not entry["parameters"]:
            del entry["parameters"]
        paths.setdefault(op.path, {})[op.method] = entry
    for name in [c for c in components if c.endswith(("Query", "Path"))]:
        del components[name]  # parameters, inlined above
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "liveupdates public API",
            "version": __version__,
            "description": (
                "Stories, their versions and updates, feeds, device push and health. Live updates"
                " come over WebSocket (/v1/ws) and SSE (/v1/sse): /v1/asyncapi.json describes their"
                ' messages. Errors are {"error": {"code", "message"}}. docs/protocol.md has'
                " the whole story; /docs renders both documents."
            ),
        },
        "tags": [
            {"name": "stories"},
            {"name": "feeds"},
            {"name": "streams"},
            {"name": "push"},
            {"name": "health"},
            {"name": "documents"},
        ],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "deviceSecret": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the secret POST /v1/devices gave",
                }
            },
        },
    }
    return msgspec.json.encode(document)


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    result: dict[str, Any] = msgspec.json.decode(_document())
    return result


def openapi_json() -> bytes:
    """The document as served."""
    return _document()
