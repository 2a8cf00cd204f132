"""A WebSocket client that stops reading is cut within a bounded time on both transports: 4008
where it can still read the close, the socket aborted where it cannot, its memory freed."""

from __future__ import annotations

import pytest

from liveupdates.hub import connection
from liveupdates.hub.connection import CLOSE_TIMEOUT, QueuedConnection
from tests.support.hubserver import HubServerHandle, StartHub
from tests.support.rawws import RawClient
from tests.support.waiting import until

BLOB = "x" * 100_000  # big frames fill socket buffers quickly
TRANSPORTS = ["uvicorn", "websockets"]


async def _stalled_client(hub: HubServerHandle) -> RawClient:
    client = await RawClient.open(hub.ws_port)
    await client.send('{"type": "subscribe", "channel": "feed:gazette"}')
    await client.texts_until('"subscribed"')
    assert len(hub.hub.connections) == 1
    return client  # and it reads nothing more


def _dropped(hub: HubServerHandle) -> bool:
    return any(
        isinstance(c, QueuedConnection) and c.close_code == 4008 for c in hub.hub.connections
    )


async def _publish_until_dropped(hub: HubServerHandle) -> None:
    for n in range(400):
        await hub.publish(f"story-{n % 5}", extra={"blob": BLOB})
        if _dropped(hub):
            return
    raise AssertionError("the client that stopped reading was never dropped")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_never_reads_again_is_aborted(
    start_hub_server: StartHub, transport: str
) -> None:
    hub = await start_hub_server(hub_send_queue=8, websockets_transport=transport == "websockets")
    await hub.publish("story-0", feed="gazette")
    client = await _stalled_client(hub)
    try:
        await _publish_until_dropped(hub)
        # The close frame cannot get through a full window: the socket is aborted in bounded time.
        await until(
            lambda: not hub.hub.connections,
            timeout=CLOSE_TIMEOUT + 5,
            message=lambda: f"still connected: {hub.hub.connections}",
        )
        # The server's side is gone: reading on drains what the kernel held, then the stream ends.
        await client.read_to_end()
    finally:
        client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_reads_again_gets_4008(
    start_hub_server: StartHub, transport: str
) -> None:
    hub = await start_hub_server(hub_send_queue=8, websockets_transport=transport == "websockets")
    await hub.publish("story-0", feed="gazette")
    client = await _stalled_client(hub)
    try:
        await _publish_until_dropped(hub)
        assert await client.read_to_end() == 4008
        await until(lambda: not hub.hub.connections, timeout=CLOSE_TIMEOUT + 5)
    finally:
        client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stuck_send_is_cut_even_when_the_queue_never_fills(
    start_hub_server: StartHub, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet channel: too few frames to overflow the queue, but the socket takes none."""
    monkeypatch.setattr(connection, "SEND_TIMEOUT", 1.0)
    hub = await start_hub_server(
        hub_send_queue=10_000, websockets_transport=transport == "websockets"
    )
    await hub.publish("story-0", feed="gazette")
    client = await _stalled_client(hub)
    try:
        # Enough to fill the socket buffers, far fewer than the queue holds.
        for n in range(120):
            await hub.publish(f"story-{n % 5}", extra={"blob": BLOB})
        await until(lambda: _dropped(hub) or not hub.hub.connections, timeout=15)
        assert await client.read_to_end() == 4008
        await until(lambda: not hub.hub.connections, timeout=CLOSE_TIMEOUT + 5)
    finally:
        client.close()
