"""WebSocket protocol v1 against the real app on real uvicorn, with real `websockets` clients."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from liveupdates.models import FeedConfig
from tests.support.hubserver import HubServerHandle, StartHub
from tests.support.waiting import until


async def test_fresh_channel_subscribes_at_zero_and_gets_the_update(
    hub_server: HubServerHandle,
) -> None:
    hub = hub_server
    await hub.store.upsert_feed(_feed("gazette"))
    async with hub.ws() as client:
        sub = await client.subscribe("feed:gazette")
        assert sub == {
            "type": "subscribed",
            "channel": "feed:gazette",
            "seq": 0,
            "epoch": hub.store.epoch,
            "recovered": False,
        }
        entries = await hub.publish("bridge")
        update = await client.expect("update")
        feed_entry = next(e for e in entries if e.channel == "feed:gazette")
        assert update == {
            "type": "update",
            "channel": "feed:gazette",
            "seq": 1,
            "event": feed_entry.event,
        }


async def test_story_channel_update_carries_exactly_the_event(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge")
        assert (sub["seq"], sub["recovered"]) == (1, False)
        entries = await hub.publish("bridge", title="Bridge closes again")
        update = await client.expect("update")
        assert update["seq"] == 2
        assert update["event"] == entries[0].event
        assert update["event"]["kind"] == "updated"
        assert update["event"]["story"]["version"] == 2


async def test_resume_replays_exactly_the_missed_updates_then_live(
    hub_server: HubServerHandle,
) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge")
        await hub.publish("bridge")
        last = await client.expect("update")
    epoch, since = sub["epoch"], last["seq"]
    assert since == 2
    await hub.publish("bridge")  # missed while away
    await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge", since=since, epoch=epoch)
        assert (sub["seq"], sub["recovered"], sub["epoch"]) == (4, True, epoch)
        replay = [await client.expect("update") for _ in range(2)]
        assert [u["seq"] for u in replay] == [3, 4]
        assert [u["event"]["story"]["version"] for u in replay] == [3, 4]
        await hub.publish("bridge")
        live = await client.expect("update")
        assert live["seq"] == 5
        await client.send({"type": "ping"})
        assert await client.expect("pong") == {"type": "pong"}  # nothing sent twice in between


async def test_resume_without_epoch_and_when_nothing_was_missed(
    hub_server: HubServerHandle,
) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge", since=1)
        assert (sub["seq"], sub["recovered"]) == (1, True)
        await client.send({"type": "ping"})
        await client.expect("pong")
        sub = await client.subscribe("story:bridge", since=0)  # re-subscribe restarts the channel
        assert sub["recovered"] is True
        assert (await client.expect("update"))["seq"] == 1


async def test_epoch_mismatch_gets_a_reset(hub_server: HubServerHandle) -> None:
    hub = hub_server
    for _ in range(3):
        await hub.publish("bridge", title="Bridge title")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge", since=1, epoch="another-log")
        assert (sub["seq"], sub["recovered"]) == (3, False)
        reset = await client.expect("reset")
        assert reset["channel"] == "story:bridge"
        assert reset["seq"] == 3
        snap = reset["snapshot"]
        assert (snap["id"], snap["version"], snap["title"]) == ("bridge", 3, "Bridge title")
        assert set(snap) >= {"id", "feed", "url", "title", "summary", "paragraphs", "version"}
        await hub.publish("bridge")
        assert (await client.expect("update"))["seq"] == 4


async def test_history_beyond_retention_gets_a_reset(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(log_retention=3)
    for _ in range(6):
        await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge", since=1, epoch=hub.store.epoch)
        assert (sub["seq"], sub["recovered"]) == (6, False)
        reset = await client.expect("reset")
        assert (reset["seq"], reset["snapshot"]["version"]) == (6, 6)
        # Within retention, the same log replays.
        sub = await client.subscribe("story:bridge", since=3, epoch=hub.store.epoch)
        assert sub["recovered"] is True
        assert [(await client.expect("update"))["seq"] for _ in range(3)] == [4, 5, 6]


async def test_more_than_the_replay_cap_gets_a_reset(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(log_replay_cap=2)
    for _ in range(4):
        await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge", since=1)
        assert sub["recovered"] is False
        await client.expect("reset")
        sub = await client.subscribe("story:bridge", since=2)
        assert sub["recovered"] is True
        assert [(await client.expect("update"))["seq"] for _ in range(2)] == [3, 4]


async def test_since_ahead_of_the_log_gets_a_reset(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as client:
        sub = await client.subscribe("story:bridge", since=99)
        assert sub["recovered"] is False
        assert (await client.expect("reset"))["seq"] == 1


async def test_feed_reset_lists_the_feed_stories(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    await hub.publish("ferry")
    async with hub.ws() as client:
        await client.subscribe("feed:gazette", since=0, epoch="old")
        reset = await client.expect("reset")
        assert reset["snapshot"] is None
        assert [s["id"] for s in reset["stories"]] == ["ferry", "bridge"]


async def test_unsubscribe_stops_updates(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as client:
        await client.subscribe("story:bridge")
        await client.send({"type": "unsubscribe", "channel": "story:bridge"})
        assert await client.expect("unsubscribed") == {
            "type": "unsubscribed",
            "channel": "story:bridge",
        }
        await hub.publish("bridge")
        await client.send({"type": "ping"})
        assert (await client.recv())["type"] == "pong"  # and no update before it
    assert hub.hub.fanout.channels() == []


async def test_one_bus_subscription_per_channel_however_many_clients(
    hub_server: HubServerHandle,
) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as a, hub.ws() as b:
        await a.subscribe("story:bridge")
        await b.subscribe("story:bridge")
        assert hub.bus.subscriber_count("story:bridge") == 1
        assert hub.hub.fanout.members("story:bridge") == 2
        # Under uvicorn, frames go straight to the socket while it has room.
        assert all(c.writes_directly for c in hub.hub.connections)
    await until(lambda: hub.bus.subscriber_count("story:bridge") == 0, timeout=5.0, interval=0.01)


async def test_200_clients_each_get_every_update_once(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    updates = 5
    ready = asyncio.Event()
    subscribed = 0
    n = 200

    async def reader() -> list[int]:
        nonlocal subscribed
        async with hub.ws() as client:
            await client.subscribe("story:bridge")
            subscribed += 1
            if subscribed == n:
                ready.set()
            seqs = []
            while len(seqs) < updates:
                message = await client.recv(timeout=20)
                assert message["type"] == "update"
                seqs.append(message["seq"])
            await client.send({"type": "ping"})
            assert (await client.recv(timeout=20))["type"] == "pong"  # no extra update
            return seqs

    tasks = [asyncio.create_task(reader()) for _ in range(n)]
    await asyncio.wait_for(ready.wait(), 30)
    for _ in range(updates):
        await hub.publish("bridge")
    results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert all(seqs == [2, 3, 4, 5, 6] for seqs in results)


async def test_disallowed_origin_is_refused(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_allowed_origins=("https://reader.example",))
    await hub.publish("bridge")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(hub.ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with hub.ws(origin="https://reader.example") as client:
        assert (await client.subscribe("story:bridge"))["seq"] == 1


async def test_shutdown_closes_clients_with_1012(start_hub_server: StartHub) -> None:
    hub = await start_hub_server()
    await hub.publish("bridge")
    async with hub.ws() as client:
        await client.subscribe("story:bridge")
        stopping = asyncio.create_task(hub.stop())
        assert await client.closed_with() == 1012
        await stopping


def _feed(feed_id: str) -> FeedConfig:
    return FeedConfig(id=feed_id, url=f"https://{feed_id}.example/feed.xml")
