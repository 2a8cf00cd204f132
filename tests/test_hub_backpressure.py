"""A reader that stops reading is dropped (4008) without delaying anyone else."""

from __future__ import annotations

import asyncio
import socket

from websockets.asyncio.client import connect

from liveupdates.hub.connection import QueuedConnection
from tests.support.hubserver import StartHub, WSClient

BLOB = "x" * 200_000  # big frames fill socket buffers quickly


def _small_buffer_socket(port: int) -> socket.socket:
    # A tiny receive window, so a client that stops reading backs up into the server quickly.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_slow_reader_is_dropped_and_fast_reader_is_not_delayed(
    start_hub_server: StartHub,
) -> None:
    hub = await start_hub_server(hub_send_queue=4)
    await hub.publish("bridge")
    sock = _small_buffer_socket(hub.ws_port)
    # max_queue=1: the client library stops reading the socket once one message is waiting.
    async with (
        connect(hub.ws_url, sock=sock, max_size=None, max_queue=1) as slow_conn,
        hub.ws() as fast,
    ):
        slow = WSClient(slow_conn)
        await slow.subscribe("story:bridge")
        await fast.subscribe("story:bridge")

        def slow_dropped() -> bool:
            return any(
                isinstance(c, QueuedConnection) and c.close_code == 4008
                for c in hub.hub.connections
            )

        loop = asyncio.get_running_loop()
        received: list[int] = []
        worst = 0.0
        for _ in range(300):
            entries = await hub.publish("bridge", extra={"blob": BLOB})
            sent_at = loop.time()
            update = await fast.expect("update", timeout=2.0)
            worst = max(worst, loop.time() - sent_at)
            received.append(update["seq"])
            assert update["seq"] == entries[0].seq
            if slow_dropped():
                break
        assert slow_dropped(), "the reader that stopped reading was never dropped"
        assert received == list(range(2, 2 + len(received)))
        assert worst < 1.0, f"fast reader waited {worst:.2f}s for an update"
        # The fast reader keeps going after the slow one is gone.
        more = await hub.publish("bridge")
        assert (await fast.expect("update"))["seq"] == more[0].seq
        # When the slow reader reads again it finds what was buffered, then the close code.
        assert await slow.closed_with(timeout=15) == 4008
        assert slow_conn.close_reason.startswith("too slow")
