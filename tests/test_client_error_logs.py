"""A client's bad input is the client's error: at most one short log line, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from websockets.frames import Frame, Opcode

from tests.support.hubserver import StartHub
from tests.support.rawws import RawClient

BAD_FRAMES = [
    '{"type": "subscribe", "channel": "feed:\\udfff"}',
    '{"type": "unsubscribe", "channel": "story:\\ud800"}',
    '{"type": "subscribe", "channel": "story:x", "since": "²"}',
    '{"type": "subscribe", "channel": "story:x", "since": 99999999999999999999999}',
    "not json",
]


@pytest.fixture
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of uvicorn, websockets and liveupdates (uvicorn's loggers do not propagate).
    Call `listen()` after the server started: uvicorn's logging set-up replaces handlers."""
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "websockets")]
    yield caplog
    for logger in loggers:
        logger.removeHandler(caplog.handler)


def listen(caplog: pytest.LogCaptureFixture) -> None:
    for name in ("uvicorn.error", "websockets"):
        logging.getLogger(name).addHandler(caplog.handler)


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info is not None or r.exc_text]


@pytest.mark.parametrize("transport", ["uvicorn", "websockets"])
async def test_invalid_utf8_frames_log_one_line_without_traceback(
    start_hub_server: StartHub, server_logs: pytest.LogCaptureFixture, transport: str
) -> None:
    hub = await start_hub_server(websockets_transport=transport == "websockets")
    listen(server_logs)
    for _ in range(5):
        client = await RawClient.open(hub.ws_port)
        try:
            await client.send_frame(Frame(Opcode.TEXT, b'{"type": "ping", "x": "\xff\xfe"}'))
            await client.read_to_end()
            assert client.protocol.close_rcvd is not None
            assert client.protocol.close_rcvd.code == 1007  # invalid frame payload data
        finally:
            client.close()
    assert _tracebacks(server_logs) == []
    utf8 = [r for r in server_logs.records if "UTF-8" in r.getMessage()]
    assert len(utf8) <= 1
    assert all(r.levelno <= logging.WARNING for r in utf8)
    assert not [r for r in server_logs.records if r.levelno >= logging.ERROR]


async def test_bad_messages_are_not_server_errors(
    start_hub_server: StartHub, server_logs: pytest.LogCaptureFixture
) -> None:
    hub = await start_hub_server()
    listen(server_logs)
    async with hub.ws() as client:
        for frame in BAD_FRAMES:
            await client.send(frame)
            assert (await client.expect("error"))["code"] == "bad_request"
    assert _tracebacks(server_logs) == []
    assert not [r for r in server_logs.records if r.levelno >= logging.WARNING]
    assert not [r for r in server_logs.records if "session failed" in r.getMessage()]
