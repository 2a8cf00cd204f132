"""Wire protocol v1: parsing client messages and encoding server messages. Pure: no I/O.

Every server message is built here so WebSocket, SSE and REST say exactly the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from msgspec import UnsetType

from liveupdates.api import messages as frames
from liveupdates.api.models import MAX_CHANNEL_LENGTH
from liveupdates.validate import InvalidInput, valid_text
from liveupdates.validate import parse_int as _parse_int

# Error codes a client may see in {"type": "error"}.
BAD_REQUEST = "bad_request"
UNKNOWN_CHANNEL = "unknown_channel"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
RATE_LIMITED = "rate_limited"
MESSAGE_TOO_LARGE = "message_too_large"

# WebSocket close codes (documented in docs/protocol.md, "Close codes").
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # disallowed Origin, or a client that keeps sending bad or too many messages
CLOSE_TOO_BIG = 1009  # a frame far over the limit: refused by the protocol layer unread
CLOSE_INTERNAL = 1011  # a server fault (or an unanswered keepalive ping): reconnect and resume
CLOSE_RESTART = 1012  # server shutting down or restarting: reconnect with backoff, resume
CLOSE_TRY_AGAIN = (
    1013  # over a connection limit, or the store is down: retry after the reason's wait
)
CLOSE_TOO_SLOW = 4008  # the client did not read fast enough: reconnect and resume with since/epoch
CLOSE_HISTORY_LOST = 4009  # the channel's log was lost or trimmed under us: resume to get a reset

CHANNEL_KINDS = ("story", "feed")


class ProtocolError(ValueError):
    """A client message that cannot be honoured; `code` is the wire error code."""

    def __init__(self, code: str, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.channel = channel


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    since: int | None = None
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientMessage = Subscribe | Unsubscribe | Ping


_ENCODER = msgspec.json.Encoder()
_CLIENT_FRAMES = msgspec.json.Decoder(frames.ClientFrame)


def _dumps(data: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII as UTF-8. msgspec, not json.dumps: 5x faster on an update frame
    (bench/apimodels.py), and every frame of every reader passes here."""
    try:
        return _ENCODER.encode(data).decode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate that slipped through: escaped, so the frame is still valid UTF-8.
        return json.dumps(data, separators=(",", ":"))


def parse_channel(channel: object) -> tuple[Literal["story", "feed"], str]:
    """Split "story:<id>" / "feed:<id>" or raise ProtocolError(bad_request)."""
    if not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise ProtocolError(
            BAD_REQUEST, f"channel must be a non-empty string of at most {MAX_CHANNEL_LENGTH}"
        )
    if not valid_text(channel):
        # Not echoed back: a lone surrogate cannot be encoded into the reply either.
        raise ProtocolError(BAD_REQUEST, "channel must be valid Unicode text (no lone surrogates)")
    kind, sep, ident = channel.partition(":")
    if not sep or kind not in CHANNEL_KINDS or not ident:
        raise ProtocolError(
            BAD_REQUEST, "channel must look like story:<id> or feed:<id>", channel=channel
        )
    return kind, ident  # type: ignore[return-value]


def parse_since(value: object) -> int | None:
    """A resume position: a non-negative 64-bit integer (JSON number or ASCII decimal string),
    or None."""
    if value is None:
        return None
    try:
        return _parse_int(value, "since")
    except InvalidInput:
        raise ProtocolError(
            BAD_REQUEST, "since must be a non-negative integer (ASCII digits, 64-bit)"
        ) from None


def parse_epoch(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128 or not valid_text(value):
        raise ProtocolError(BAD_REQUEST, "epoch must be a string of at most 128 characters")
    return value


def parse_client_message(text: str) -> ClientMessage:
    """Decode one client text frame. Raises ProtocolError(bad_request) for anything malformed.

    The frame models (liveupdates/api/messages.py, the ones /v1/asyncapi.json is made of) decode
    and check it; a frame they refuse goes through `_explain`, whose checks word the refusal.
    """
    try:
        frame = _CLIENT_FRAMES.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return _explain(text)
    if isinstance(frame, frames.Subscribe):
        try:
            # since may be a digit string (the model says at most 19 digits): bounded here.
            since = None if isinstance(frame.since, UnsetType) else parse_since(frame.since)
            epoch = None if isinstance(frame.epoch, UnsetType) else parse_epoch(frame.epoch)
        except ProtocolError as exc:
            exc.channel = frame.channel
            raise
        return Subscribe(channel=frame.channel, since=since, epoch=epoch)
    if isinstance(frame, frames.Unsubscribe):
        return Unsubscribe(channel=frame.channel)
    return Ping()


def _explain(text: str) -> ClientMessage:
    """The frame by hand, for the refusal's wording (and anything the models were stricter on)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_REQUEST, "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(BAD_REQUEST, "message must be a JSON object")
    kind = data.get("type")
    if kind == "ping":
        return Ping()
    if kind == "subscribe":
        channel = data.get("channel")
        parse_channel(channel)
        try:
            since = parse_since(data.get("since"))
            epoch = parse_epoch(data.get("epoch"))
        except ProtocolError as exc:
            exc.channel = channel
            raise
        return Subscribe(channel=channel, since=since, epoch=epoch)  # type: ignore[arg-type]
    if kind == "unsubscribe":
        channel = data.get("channel")
        parse_channel(channel)
        return Unsubscribe(channel=channel)  # type: ignore[arg-type]
    if not isinstance(kind, str):
        raise ProtocolError(BAD_REQUEST, "message needs a string field 'type'")
    raise ProtocolError(BAD_REQUEST, f"unknown message type {kind[:40]!r}")


# -- server messages ---------------------------------------------------------------------------


def encode_update(channel: str, seq: int, event: dict[str, Any]) -> str:
    """The update frame: built once per entry and shared by every reader of the channel."""
    return _dumps(update_message(channel, seq, event))


def update_message(channel: str, seq: int, event: dict[str, Any]) -> dict[str, Any]:
    """The update as a dict (REST bodies embed it); `encode_update` is its wire text."""
    return {"type": "update", "channel": channel, "seq": seq, "event": event}


def encode_subscribed(channel: str, seq: int, epoch: str, recovered: bool) -> str:
    return _dumps(
        {
            "type": "subscribed",
            "channel": channel,
            "seq": seq,
            "epoch": epoch,
            "recovered": recovered,
        }
    )


def encode_unsubscribed(channel: str) -> str:
    return _dumps({"type": "unsubscribed", "channel": channel})


def reset_message(
    channel: str,
    seq: int,
    snapshot: dict[str, Any] | None,
    stories: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Tells a reader its position cannot be replayed: take this state, carry on after `seq`.

    Story channels carry the current snapshot; feed channels carry `snapshot: null` and `stories`,
    the feed's current stories, most recently changed first.
    """
    message: dict[str, Any] = {
        "type": "reset",
        "channel": channel,
        "seq": seq,
        "snapshot": snapshot,
    }
    if stories is not None:
        message["stories"] = stories
    return message


def encode(message: dict[str, Any]) -> str:
    return _dumps(message)


def encode_error(code: str, message: str, channel: str | None = None) -> str:
    data: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        data["channel"] = channel
    return _dumps(data)


PONG = _dumps({"type": "pong"})


def sse_event(event: str, data: str, event_id: int | None = None) -> str:
    """One Server-Sent Event. `data` is a single-line JSON text, so one data: line suffices."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


SSE_HEARTBEAT = ": ping\n\n"
