"""The default port's front door (hub/frontdoor.py): /v1/ws upgrades to the `websockets` library,
everything else to uvicorn's ASGI app, on one port.

Every other hub test runs against the default port, so through the front door. Here: what only the
front door does, and the WebSocket tests once more with it off (`hub.ws_front_door = false`), so
the ASGI endpoint that then serves /v1/ws (and keep-alive upgrades) stays covered.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from liveupdates.hub.connection import WebSocketConnection
from liveupdates.hub.frontdoor import is_websocket_request
from liveupdates.hub.wsserver import WebsocketsConnection
from liveupdates.settings import load_settings
from tests.support.hubserver import DEADLINE, HubServerHandle, StartHub, WSClient
from tests.support.sse import Event, events
from tests.support.waiting import until
from tests.test_hub_abuse import (  # noqa: F401
    test_binary_frames_get_bad_request,
    test_malformed_messages_get_bad_request,
    test_oversized_frames,
)
from tests.test_hub_backpressure import (  # noqa: F401
    test_slow_reader_is_dropped_and_fast_reader_is_not_delayed,
)
from tests.test_hub_ws import (  # noqa: F401
    test_200_clients_each_get_every_update_once,
    test_disallowed_origin_is_refused,
    test_resume_replays_exactly_the_missed_updates_then_live,
    test_shutdown_closes_clients_with_1012,
    test_story_channel_update_carries_exactly_the_event,
)


@pytest.fixture
def start_hub_server(start_hub_server: StartHub) -> StartHub:
    """The collected tests above run with the front door off: /v1/ws through the ASGI app."""

    async def start(**overrides: Any) -> HubServerHandle:
        overrides.setdefault("hub_ws_front_door", False)
        return await start_hub_server(**overrides)

    return start


def test_the_front_door_is_on_by_default() -> None:
    assert load_settings({}).hub_ws_front_door is True
    assert load_settings({"LIVEUPDATES_HUB_WS_FRONT_DOOR": "false"}).hub_ws_front_door is False


def test_which_requests_are_websocket_upgrades() -> None:
    def head(line: str, *headers: str) -> bytes:
        return "\r\n".join([line, "Host: x", *headers]).encode()

    assert is_websocket_request(head("GET /v1/ws HTTP/1.1", "Upgrade: websocket"))
    assert is_websocket_request(head("GET /v1/ws?x=1 HTTP/1.1", "upgrade:  WebSocket "))
    assert not is_websocket_request(head("GET /v1/ws HTTP/1.1"))  # plain GET: uvicorn
    assert not is_websocket_request(head("POST /v1/ws HTTP/1.1", "Upgrade: websocket"))
    assert not is_websocket_request(head("GET /v1/wsx HTTP/1.1", "Upgrade: websocket"))
    assert not is_websocket_request(head("GET /v1/sse HTTP/1.1", "Upgrade: websocket"))
    assert not is_websocket_request(head("GET /v1/ws HTTP/1.1", "X-Upgrade: websocket"))
    assert not is_websocket_request(b"garbage")


async def test_one_port_serves_page_rest_sse_and_websocket_by_websockets(
    start_hub_server: StartHub,
) -> None:
    hub = await start_hub_server(hub_ws_front_door=True)
    await hub.publish("bridge")
    async with httpx.AsyncClient(base_url=hub.base_url) as http:
        story = await http.get("/v1/stories/bridge")
        assert story.status_code == 200
        assert "content-security-policy" in story.headers
        plain = await http.get("/v1/ws")  # no upgrade: the ASGI app answers, as before
        assert plain.status_code < 500
    async with (
        hub.ws() as client,
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        stream = events(response)

        async def sse() -> Event:
            while (event := await asyncio.wait_for(anext(stream), DEADLINE)).event is None:
                pass  # comments: heartbeats
            return event

        assert (await client.subscribe("story:bridge"))["seq"] == 1
        assert (await sse()).event == "subscribed"
        kinds = {type(c).__name__ for c in hub.hub.connections}
        assert WebsocketsConnection.__name__ in kinds
        assert WebSocketConnection.__name__ not in kinds
        entries = await hub.publish("bridge")
        assert (await client.expect("update"))["seq"] == entries[0].seq
        update = await sse()
        assert (update.event, update.data["seq"]) == ("update", entries[0].seq)
    await until(lambda: not hub.hub.connections, timeout=5.0, interval=0.01)


async def test_keep_alive_upgrade_after_a_request_reaches_the_asgi_endpoint(
    start_hub_server: StartHub,
) -> None:
    """The front door routes a connection by its first request; a later upgrade on the same
    connection is uvicorn's, and the ASGI endpoint speaks the same protocol."""
    hub = await start_hub_server(hub_ws_front_door=True)
    await hub.publish("bridge")
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(b"GET /v1/stories/bridge HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200")
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        writer.write(
            b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 101")
        await until(
            lambda: any(isinstance(c, WebSocketConnection) for c in hub.hub.connections),
            timeout=5.0,
            interval=0.01,
        )
    finally:
        writer.close()
    await until(lambda: not hub.hub.connections, timeout=5.0, interval=0.01)


async def test_clients_through_the_front_door_share_one_fan_out(start_hub_server: StartHub) -> None:
    """Two clients (the test helper's and a raw websockets one) on the default port are two
    members of one channel group and get the same frame."""
    front = await start_hub_server(hub_ws_front_door=True)
    await front.publish("bridge")
    async with front.ws() as a, connect(front.ws_url) as raw:
        b = WSClient(raw)
        await a.subscribe("story:bridge")
        await b.subscribe("story:bridge")
        assert front.hub.fanout.members("story:bridge") == 2
        await front.publish("bridge")
        assert await a.expect("update") == await b.expect("update")


async def asgi_websocket(port: int) -> socket.socket:
    """A socket to the default port that already made one HTTP request (keep-alive): the front
    door handed it to uvicorn, so its upgrade reaches the ASGI endpoint (hub/ws.py)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, b"GET /v1/stories/bridge HTTP/1.1\r\nHost: x\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        response += await asyncio.wait_for(loop.sock_recv(sock, 65536), DEADLINE)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await asyncio.wait_for(loop.sock_recv(sock, 65536), DEADLINE)
    return sock


async def test_every_transport_gets_the_same_update(start_hub_server: StartHub) -> None:
    """One channel, four readers on four transports in one process: the front door's `websockets`
    connection, the ASGI endpoint (a keep-alive upgrade on the same port), the second port
    (`hub_ws_port`) and SSE. One publish, and each gets the same update (seq and event)."""
    hub = await start_hub_server(hub_ws_front_door=True, websockets_transport=True)
    await hub.publish("bridge")
    asgi_sock = await asgi_websocket(hub.port)
    async with (
        connect(hub.asgi_ws_url) as front_raw,
        connect(hub.asgi_ws_url, sock=asgi_sock) as asgi_raw,
        connect(hub.ws_url) as second_raw,
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        clients = [WSClient(front_raw), WSClient(asgi_raw), WSClient(second_raw)]
        for client in clients:
            assert (await client.subscribe("story:bridge"))["seq"] == 1
        stream = events(response)

        async def sse() -> Event:
            while (event := await asyncio.wait_for(anext(stream), DEADLINE)).event is None:
                pass  # comments: heartbeats
            return event

        assert (await sse()).event == "subscribed"
        await until(
            lambda: hub.hub.fanout.members("story:bridge") == 4, timeout=DEADLINE, interval=0.01
        )
        kinds = sorted(type(c).__name__ for c in hub.hub.connections)
        assert kinds.count(WebsocketsConnection.__name__) == 2  # front door, second port
        assert kinds.count(WebSocketConnection.__name__) == 1  # ASGI
        entries = await hub.publish("bridge")
        updates = [await client.expect("update") for client in clients]
        assert updates[0]["seq"] == entries[0].seq
        assert updates[1] == updates[0] and updates[2] == updates[0]
        update = await sse()
        assert update.event == "update"
        assert update.data == updates[0]
    await until(lambda: not hub.hub.connections, timeout=5.0, interval=0.01)


def test_reuse_port_lets_web_processes_share_the_port() -> None:
    """`hub.reuse_port`: what `serve`/`web` bind, so a second process can bind the same port."""
    from liveupdates.startup import StartupError, listen_socket

    assert load_settings({}).hub_reuse_port is False
    assert load_settings({"LIVEUPDATES_HUB_REUSE_PORT": "true"}).hub_reuse_port is True
    first = listen_socket("127.0.0.1", 0, reuse_port=True)
    port = first.getsockname()[1]
    try:
        second = listen_socket("127.0.0.1", port, reuse_port=True)
        second.close()
        # Without it, the port is busy: one line at start, as ever.
        with pytest.raises(StartupError, match="already in use"):
            listen_socket("127.0.0.1", port)
    finally:
        first.close()
