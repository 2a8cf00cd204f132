"""WebSocket and SSE frames (docs/protocol.md), as msgspec Structs tagged by their `type`.

`asyncapi` describes the connections with them; `ClientFrame` is what a client may send, and
`ServerFrame` what the server sends (over SSE the same JSON, as `data:` of an event named after
the type). `Update` and `Reset` are shared with the REST models.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from liveupdates.api.models import Channel, Epoch, Reset, Seq, Update
from liveupdates.validate import MAX_INT

Since = (
    Annotated[
        int,
        Meta(ge=0, le=MAX_INT, description="the last seq applied (below 2^63)"),
    ]
    | Annotated[
        str,
        Meta(pattern="^[0-9]{1,19}$", description="the same as ASCII digits"),
    ]
)


class Subscribe(Struct, tag_field="type", tag="subscribe", kw_only=True):
    """Follow a channel, from now or (with since and epoch) from a position."""

    channel: Channel
    since: Since | UnsetType = UNSET
    epoch: Epoch | UnsetType = UNSET


class Unsubscribe(Struct, tag_field="type", tag="unsubscribe"):
    channel: Channel


class Ping(Struct, tag_field="type", tag="ping"):
    """Answered by a pong (browsers answer WebSocket pings themselves: only to measure latency)."""


class Subscribed(Struct, tag_field="type", tag="subscribed"):
    """Answers every successful subscribe; recovered: every update since+1..seq follows now."""

    channel: Channel
    seq: Seq
    epoch: Epoch
    recovered: bool


class Unsubscribed(Struct, tag_field="type", tag="unsubscribed"):
    channel: Channel


class Pong(Struct, tag_field="type", tag="pong"):
    pass


class ErrorFrame(Struct, tag_field="type", tag="error", kw_only=True):
    """A refused client message; the connection stays open (unless a close follows)."""

    code: Annotated[
        str,
        Meta(
            examples=[
                "bad_request",
                "unknown_channel",
                "too_many_subscriptions",
                "rate_limited",
                "message_too_large",
            ]
        ),
    ]
    message: str
    channel: str | UnsetType = UNSET


class Close(Struct, tag_field="type", tag="close"):
    """SSE only: why the stream ends (EventSource then reconnects with Last-Event-ID)."""

    code: Annotated[int, Meta(ge=1000, le=4999, examples=[1012, 4008, 4009, 1011])]
    reason: str


ClientFrame = Subscribe | Unsubscribe | Ping
ServerFrame = Subscribed | Update | Reset | Unsubscribed | Pong | ErrorFrame

__all__ = [
    "ClientFrame",
    "Close",
    "ErrorFrame",
    "Ping",
    "Pong",
    "Reset",
    "ServerFrame",
    "Subscribe",
    "Subscribed",
    "Unsubscribe",
    "Unsubscribed",
    "Update",
]
