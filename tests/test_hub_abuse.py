"""Bad input gets a clear error and never a crash; abusers are closed; others stay served."""

from __future__ import annotations

import json

import pytest

from tests.support.hubserver import HubServerHandle, StartHub, WSClient


async def _still_works(client: WSClient) -> None:
    await client.send({"type": "ping"})
    assert await client.expect("pong") == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("not json at all", "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        ('{"no": "type"}', "type"),
        ('{"type": "launch"}', "unknown message type"),
        ('{"type": "subscribe"}', "channel"),
        ('{"type": "subscribe", "channel": "weather:today"}', "story:<id>"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": -1}', "since"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": "soon"}', "since"),
        ('{"type": "subscribe", "channel": "story:bridge", "epoch": 7}', "epoch"),
        ('{"type": "unsubscribe", "channel": 42}', "channel"),
        ("[" * 100_00 + "]" * 100_00, "JSON"),
    ],
)
async def test_malformed_messages_get_bad_request(
    start_hub_server: StartHub, frame: str, fragment: str
) -> None:
    hub = await start_hub_server(hub_max_message_bytes=65536)
    async with hub.ws() as client:
        await client.send(frame)
        error = await client.expect("error")
        assert error["code"] == "bad_request"
        assert fragment in error["message"]
        await _still_works(client)


async def test_binary_frames_get_bad_request(hub_server: HubServerHandle) -> None:
    async with hub_server.ws() as client:
        await client.conn.send(b"\x00\x01")
        assert (await client.expect("error"))["code"] == "bad_request"
        await _still_works(client)


async def test_unknown_channels(hub_server: HubServerHandle) -> None:
    async with hub_server.ws() as client:
        for channel in ("story:nope", "feed:nope"):
            await client.send({"type": "subscribe", "channel": channel})
            error = await client.expect("error")
            assert (error["code"], error["channel"]) == ("unknown_channel", channel)
        await _still_works(client)


async def test_too_many_subscriptions(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_max_subscriptions=2)
    for story in ("a", "b", "c"):
        await hub.publish(story)
    async with hub.ws() as client:
        await client.subscribe("story:a")
        await client.subscribe("story:b")
        await client.subscribe("story:a")  # re-subscribing does not count twice
        await client.send({"type": "subscribe", "channel": "story:c"})
        error = await client.expect("error")
        assert (error["code"], error["channel"]) == ("too_many_subscriptions", "story:c")
        await client.send({"type": "unsubscribe", "channel": "story:b"})
        await client.expect("unsubscribed")
        assert (await client.subscribe("story:c"))["channel"] == "story:c"


async def test_oversized_frames(hub_server: HubServerHandle) -> None:
    async with hub_server.ws() as client:
        await client.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
        assert (await client.expect("error"))["code"] == "message_too_large"
        await _still_works(client)
    async with hub_server.ws() as client:
        # Far over the limit: refused by the protocol layer without being read whole.
        await client.send("x" * 1_000_000)
        assert await client.closed_with() == 1009


async def test_flood_is_rate_limited_then_closed_and_others_are_served(
    start_hub_server: StartHub,
) -> None:
    hub = await start_hub_server(hub_rate_per_second=1.0, hub_rate_burst=5)
    await hub.publish("bridge")
    async with hub.ws() as flooder, hub.ws() as bystander:
        await bystander.subscribe("story:bridge")
        for _ in range(100):
            await flooder.send({"type": "ping"})
        codes = []
        for _ in range(6):
            message = await flooder.recv()
            codes.append(message.get("code", message["type"]))
        assert codes[:5] == ["pong"] * 5
        assert codes[5] == "rate_limited"
        assert await flooder.closed_with() == 1008
        assert flooder.conn.close_reason == "too many bad or excess messages"
        entries = await hub.publish("bridge")
        assert (await bystander.expect("update"))["seq"] == entries[0].seq


async def test_sustained_garbage_is_closed_with_1008(hub_server: HubServerHandle) -> None:
    async with hub_server.ws() as client:
        for _ in range(50):
            await client.send("garbage")
        assert await client.closed_with() == 1008


async def test_burst_of_subscribes_is_refused_in_part_not_closed(
    start_hub_server: StartHub,
) -> None:
    hub = await start_hub_server(hub_rate_per_second=0.5, hub_rate_burst=5)
    stories = [f"s{i}" for i in range(12)]
    for story in stories:
        await hub.publish(story)
    async with hub.ws() as client:
        for story in stories:
            await client.send({"type": "subscribe", "channel": f"story:{story}"})
        answers = [await client.recv() for _ in stories]
        accepted = [a["channel"] for a in answers if a["type"] == "subscribed"]
        refused = [a for a in answers if a["type"] == "error"]
        assert len(accepted) >= 5
        assert {a["code"] for a in refused} <= {"rate_limited"}
        assert len(accepted) + len(refused) == len(stories)
        # Still connected and served.
        entries = await hub.publish(accepted[0].removeprefix("story:"))
        assert (await client.expect("update"))["seq"] == entries[0].seq
