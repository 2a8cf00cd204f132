"""The AsyncAPI 3 document of /v1/ws and /v1/sse, generated from api/messages.py. Pure.

The document describes the server: it receives the client frames (subscribe, unsubscribe, ping)
on the WebSocket and sends the others. docs/protocol.md is the prose; this is the same in JSON
Schema, for code generators and validators.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from liveupdates import __version__
from liveupdates.api import examples, messages

REF = "#/components/schemas/{name}"

# (message name, model, example, summary)
CLIENT = (
    (
        "subscribe",
        messages.Subscribe,
        examples.SUBSCRIBE,
        "Follow a channel from now or from a position",
    ),
    (
        "unsubscribe",
        messages.Unsubscribe,
        messages.Unsubscribe(examples.CHANNEL),
        "Stop following a channel",
    ),
    ("ping", messages.Ping, messages.Ping(), "Asks for a pong"),
)
SERVER = (
    (
        "subscribed",
        messages.Subscribed,
        examples.SUBSCRIBED,
        "Answers a subscribe: where the channel stands",
    ),
    (
        "update",
        messages.Update,
        examples.UPDATE,
        "One entry of the channel's log (seq gapless per channel)",
    ),
    (
        "reset",
        messages.Reset,
        examples.RESET,
        "The position cannot be replayed: take this state, carry on after seq",
    ),
    (
        "unsubscribed",
        messages.Unsubscribed,
        messages.Unsubscribed(examples.CHANNEL),
        "Confirms an unsubscribe",
    ),
    ("pong", messages.Pong, messages.Pong(), "Answers a ping"),
    (
        "error",
        messages.ErrorFrame,
        messages.ErrorFrame(
            code="unknown_channel", message="no such channel story:nope", channel="story:nope"
        ),
        "A refused client message",
    ),
)
SSE_ONLY = (
    (
        "close",
        messages.Close,
        examples.CLOSE,
        "SSE: why the stream ends (then EventSource reconnects)",
    ),
)
SSE_EVENTS = ("subscribed", "update", "reset", "close")


def _message(name: str, schema: dict[str, Any], example: Any, summary: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": schema,
        "examples": [{"name": name, "payload": msgspec.to_builtins(example)}],
    }


def _refs(names: tuple[str, ...] | list[str], channel: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names]


@cache
def _document() -> bytes:
    entries = (*CLIENT, *SERVER, *SSE_ONLY)
    schemas, components = msgspec.json.schema_components(
        [model for _, model, _, _ in entries], ref_template=REF
    )
    component_messages = {
        name: _message(name, schema, example, summary)
        for (name, _, example, summary), schema in zip(entries, schemas, strict=True)
    }
    client = [name for name, *_ in CLIENT]
    server = [name for name, *_ in SERVER]
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "liveupdates streams",
            "version": __version__,
            "description": (
                "Wire protocol v1 of /v1/ws (WebSocket: one JSON object per text frame, any"
                " number of channels) and /v1/sse (Server-Sent Events: one channel per stream,"
                " the same JSON as data:, the event named after its type, id: the seq)."
                " docs/protocol.md explains resuming, resets, limits and close codes;"
                " /v1/openapi.json describes the REST routes."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "websocket": {
                "host": "{host}",
                "protocol": "ws",
                "description": "wss behind TLS; the same host as the REST API",
                "variables": {"host": {"default": "localhost:8000"}},
            },
            "http": {
                "host": "{host}",
                "protocol": "http",
                "description": "https behind TLS",
                "variables": {"host": {"default": "localhost:8000"}},
            },
        },
        "channels": {
            "websocket": {
                "address": "/v1/ws",
                "title": "WebSocket",
                "servers": [{"$ref": "#/servers/websocket"}],
                "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in client + server},
            },
            "sse": {
                "address": "/v1/sse?channel={channel}",
                "title": "Server-Sent Events",
                "description": (
                    "Optional since and epoch query parameters; Last-Event-ID takes precedence"
                    " over since. Errors before streaming are JSON answers (see /v1/openapi.json)."
                ),
                "servers": [{"$ref": "#/servers/http"}],
                "parameters": {"channel": {"description": "story:<id> or feed:<id>"}},
                "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in SSE_EVENTS},
            },
        },
        "operations": {
            "receiveClientFrames": {
                "action": "receive",
                "channel": {"$ref": "#/channels/websocket"},
                "summary": "What a client sends on the WebSocket",
                "messages": _refs(client, "websocket"),
            },
            "sendServerFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/websocket"},
                "summary": "What the server sends on the WebSocket",
                "messages": _refs(server, "websocket"),
            },
            "sendEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/sse"},
                "summary": "What the server streams over SSE",
                "messages": _refs(list(SSE_EVENTS), "sse"),
            },
        },
        "components": {"schemas": components, "messages": component_messages},
    }
    return msgspec.json.encode(document)


def asyncapi_document() -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(_document())
    return result


def asyncapi_json() -> bytes:
    return _document()
