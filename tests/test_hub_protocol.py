"""Pure parts of the hub: message parsing, replay decisions, rate limiting, origins."""

from __future__ import annotations

import json

import pytest

from liveupdates.hub.core import can_replay
from liveupdates.hub.origins import OriginPolicy
from liveupdates.hub.protocol import (
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    encode_error,
    encode_subscribed,
    encode_update,
    parse_client_message,
    sse_event,
)
from liveupdates.hub.ratelimit import TokenBucket
from liveupdates.store.base import LogBounds


def test_parse_valid_messages() -> None:
    assert parse_client_message('{"type":"ping"}') == Ping()
    assert parse_client_message(
        '{"type":"subscribe","channel":"story:a","since":3,"epoch":"e"}'
    ) == Subscribe("story:a", 3, "e")
    assert parse_client_message('{"type":"subscribe","channel":"feed:f"}') == Subscribe("feed:f")
    assert parse_client_message('{"type":"unsubscribe","channel":"feed:f"}') == Unsubscribe(
        "feed:f"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        '"ping"',
        '{"type": 1}',
        '{"type":"subscribe","channel":"story:"}',
        '{"type":"subscribe","channel":":a"}',
        '{"type":"subscribe","channel":"story:a","since":true}',
        '{"type":"subscribe","channel":"story:a","since":1.5}',
        '{"type":"subscribe","channel":"' + "story:" + "a" * 600 + '"}',
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ProtocolError) as error:
        parse_client_message(text)
    assert error.value.code == "bad_request"


def test_encodings_are_compact_json() -> None:
    frame = encode_update("story:a", 2, {"kind": "updated", "é": 1})
    assert json.loads(frame) == {
        "type": "update",
        "channel": "story:a",
        "seq": 2,
        "event": {"kind": "updated", "é": 1},
    }
    assert " " not in frame and "é" in frame
    assert json.loads(encode_subscribed("feed:f", 0, "ep", False))["epoch"] == "ep"
    assert "channel" not in json.loads(encode_error("bad_request", "no"))
    assert sse_event("update", "{}", 4) == "id: 4\nevent: update\ndata: {}\n\n"


@pytest.mark.parametrize(
    ("first", "last", "since", "epoch", "cap", "expected"),
    [
        (0, 0, 0, None, 500, True),  # empty log, nothing missed
        (1, 5, 5, "e", 500, True),  # up to date
        (1, 5, 2, "e", 500, True),
        (1, 5, 2, "other", 500, False),  # another log
        (1, 5, 6, None, 500, False),  # ahead of the log
        (3, 5, 1, None, 500, False),  # seq 2 trimmed
        (3, 5, 2, None, 500, True),  # seq 3 is the oldest kept
        (1, 600, 10, None, 500, False),  # over the replay cap
    ],
)
def test_can_replay(
    first: int, last: int, since: int, epoch: str | None, cap: int, expected: bool
) -> None:
    assert can_replay(LogBounds(first, last, "e"), since, epoch, cap) is expected


def test_can_replay_needs_a_position() -> None:
    assert can_replay(LogBounds(1, 5, "e"), None, None, 500) is False


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) is True  # one token back after half a second
    assert bucket.take(0.5) is False
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0)  # capped at burst
    assert bucket.take(100.0) is False


def test_origin_policy() -> None:
    assert OriginPolicy(()).allows("https://any.example")
    policy = OriginPolicy(["https://Reader.example/"])
    assert policy.allows("https://reader.example")
    assert not policy.allows("https://evil.example")
    assert policy.allows(None)  # non-browser clients send no Origin
