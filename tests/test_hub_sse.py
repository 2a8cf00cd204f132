"""Server-Sent Events at /v1/sse, read with httpx streaming against real uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.support.hubserver import DEADLINE, HubServerHandle, StartHub
from tests.support.sse import Event, events
from tests.support.waiting import until


async def next_event(stream: AsyncIterator[Event], *, skip_comments: bool = True) -> Event:
    async def read() -> Event:
        async for event in stream:
            if event.comment is not None and skip_comments:
                continue
            if event.event is None and event.comment is None:
                continue  # the retry: field
            return event
        raise AssertionError("stream ended")

    return await asyncio.wait_for(read(), DEADLINE)


async def test_sse_subscribes_then_streams_updates(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        sub = await next_event(stream)
        assert (sub.event, sub.id) == ("subscribed", "1")
        assert sub.data == {
            "type": "subscribed",
            "channel": "story:bridge",
            "seq": 1,
            "epoch": hub.store.epoch,
            "recovered": False,
        }
        entries = await hub.publish("bridge")
        update = await next_event(stream)
        assert (update.event, update.id) == ("update", "2")
        assert update.data == {
            "type": "update",
            "channel": "story:bridge",
            "seq": 2,
            "event": entries[0].event,
        }


async def test_last_event_id_resumes(hub_server: HubServerHandle) -> None:
    hub = hub_server
    for _ in range(3):
        await hub.publish("bridge")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream(
            "GET",
            "/v1/sse",
            params={"channel": "story:bridge", "since": "0", "epoch": hub.store.epoch},
            headers={"Last-Event-ID": "1"},  # newer than ?since: the header wins
        ) as response,
    ):
        stream = events(response)
        sub = await next_event(stream)
        assert (sub.id, sub.data["recovered"], sub.data["seq"]) == ("1", True, 3)
        replay = [await next_event(stream) for _ in range(2)]
        assert [(e.event, e.id, e.data["seq"]) for e in replay] == [
            ("update", "2", 2),
            ("update", "3", 3),
        ]
        await hub.publish("bridge")
        assert (await next_event(stream)).id == "4"


async def test_unrecoverable_position_gets_reset_event(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    await hub.publish("bridge")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream(
            "GET", "/v1/sse", params={"channel": "story:bridge", "since": "1", "epoch": "gone"}
        ) as response,
    ):
        stream = events(response)
        sub = await next_event(stream)
        assert (sub.id, sub.data["recovered"]) == (None, False)
        reset = await next_event(stream)
        assert (reset.event, reset.id) == ("reset", "2")
        assert reset.data["snapshot"]["version"] == 2


async def test_heartbeat_comments(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_sse_heartbeat=0.2)
    await hub.publish("bridge")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        stream = events(response)
        await next_event(stream)
        beat = await next_event(stream, skip_comments=False)
        assert beat.comment == "ping"


async def test_sse_refusals(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_allowed_origins=("https://reader.example",))
    await hub.publish("bridge")
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http:
        missing = await http.get("/v1/sse", params={"channel": "story:nope"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        for params in ({}, {"channel": "bogus"}, {"channel": "story:bridge", "since": "-3"}):
            bad = await http.get("/v1/sse", params=params)
            assert bad.status_code == 400, params
            assert bad.json()["error"]["code"] == "bad_request"
        refused = await http.get(
            "/v1/sse",
            params={"channel": "story:bridge"},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403


async def test_sse_stream_ends_with_close_event_on_shutdown(start_hub_server: StartHub) -> None:
    hub = await start_hub_server()
    await hub.publish("bridge")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        stream = events(response)
        await next_event(stream)
        stopping = asyncio.create_task(hub.stop())
        closing = await next_event(stream)
        assert closing.event == "close"
        assert closing.data["code"] == 1012
        await asyncio.wait_for(stopping, 15)


async def test_client_leaving_frees_the_channel(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        await next_event(events(response))
        assert hub.hub.fanout.members("story:bridge") == 1
    await until(lambda: not hub.hub.fanout.members("story:bridge"), timeout=DEADLINE, interval=0.01)


async def test_a_reader_that_stops_reading_is_dropped_while_others_get_everything(
    start_hub_server: StartHub,
) -> None:
    """Events go straight to each stream's socket while it takes them; a reader that stops
    reading fills its socket, then its bounded queue, and is dropped with 4008, told so in its
    close event once it reads again, while the reader beside it gets every update in order."""
    hub = await start_hub_server(hub_send_queue=8)
    await hub.publish("bridge")
    blob = "x" * 100_000  # big events fill socket buffers quickly
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(
        b"GET /v1/sse?channel=story:bridge HTTP/1.1\r\nHost: hub\r\nAccept: text/event-stream\r\n\r\n"
    )
    seen = b""
    while b"event: subscribed" not in seen:
        seen += await asyncio.wait_for(reader.read(65536), DEADLINE)
    # ... and it reads nothing more until it is dropped.

    def dropped() -> bool:
        return any(getattr(c, "close_code", None) == 4008 for c in hub.hub.connections)

    received: list[int] = []
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http,
        http.stream("GET", "/v1/sse", params={"channel": "story:bridge"}) as response,
    ):
        stream = events(response)
        await next_event(stream)  # subscribed
        published: list[int] = []
        for _ in range(400):
            entries = await hub.publish("bridge", extra={"blob": blob})
            published += [e.seq for e in entries if e.channel == "story:bridge"]
            # The fast reader keeps up, so the slow one alone fills its buffers.
            received.append(int((await next_event(stream)).data["seq"]))
            if dropped():
                break
        assert dropped(), "the reader that stopped reading was never dropped"
        assert received == published
        more = [e.seq for e in await hub.publish("bridge") if e.channel == "story:bridge"]
        assert (await next_event(stream)).data["seq"] == more[0]
    rest = seen
    while chunk := await asyncio.wait_for(reader.read(1 << 20), DEADLINE):
        rest += chunk
    writer.close()
    assert b'event: close\ndata: {"type":"close","code":4008' in rest
    await until(lambda: not hub.hub.connections, timeout=DEADLINE)


async def test_head_answers_the_head_and_holds_no_stream(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http:
        head = await http.head("/v1/sse", params={"channel": "story:bridge"})
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert (await http.head("/v1/sse", params={"channel": "story:nope"})).status_code == 404
        # The same keep-alive connection serves the next request: the HEAD's response ended.
        assert (await http.get("/v1/stories/bridge")).status_code == 200
        await until(lambda: not hub.hub.connections, timeout=DEADLINE)
