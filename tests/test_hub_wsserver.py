"""/v1/ws on the `websockets` library's own server (hub_ws_port) behaves exactly as on uvicorn.

Every WebSocket test of the ASGI endpoint (protocol, resume, bad input, slow readers, origins,
shutdown) runs again here with `ws_url` pointing at the second transport, which runs next to the
real uvicorn app in the same event loop, over the same Hub.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from liveupdates.hub.wsserver import ListQueue, WebsocketsConnection
from liveupdates.settings import SettingsError, load_settings
from tests.support.hubserver import HubServerHandle, StartHub, WSClient
from tests.support.waiting import until

# The same tests, collected again in this module, where `start_hub_server` (and so `hub_server`)
# serve /v1/ws on the websockets transport.
from tests.test_hub_abuse import (  # noqa: F401
    test_binary_frames_get_bad_request,
    test_burst_of_subscribes_is_refused_in_part_not_closed,
    test_flood_is_rate_limited_then_closed_and_others_are_served,
    test_malformed_messages_get_bad_request,
    test_oversized_frames,
    test_sustained_garbage_is_closed_with_1008,
    test_too_many_subscriptions,
    test_unknown_channels,
)
from tests.test_hub_backpressure import (  # noqa: F401
    test_slow_reader_is_dropped_and_fast_reader_is_not_delayed,
)
from tests.test_hub_ws import (  # noqa: F401
    test_200_clients_each_get_every_update_once,
    test_disallowed_origin_is_refused,
    test_epoch_mismatch_gets_a_reset,
    test_feed_reset_lists_the_feed_stories,
    test_fresh_channel_subscribes_at_zero_and_gets_the_update,
    test_history_beyond_retention_gets_a_reset,
    test_more_than_the_replay_cap_gets_a_reset,
    test_one_bus_subscription_per_channel_however_many_clients,
    test_resume_replays_exactly_the_missed_updates_then_live,
    test_resume_without_epoch_and_when_nothing_was_missed,
    test_shutdown_closes_clients_with_1012,
    test_since_ahead_of_the_log_gets_a_reset,
    test_story_channel_update_carries_exactly_the_event,
    test_unsubscribe_stops_updates,
)


@pytest.fixture
def start_hub_server(start_hub_server: StartHub) -> StartHub:
    async def start(**overrides: Any) -> HubServerHandle:
        return await start_hub_server(websockets_transport=True, **overrides)

    return start


async def test_clients_of_both_transports_share_one_hub(hub_server: HubServerHandle) -> None:
    hub = hub_server
    assert hub.ws_port != hub.port
    await hub.publish("bridge")
    async with hub.ws() as native, connect(hub.asgi_ws_url) as asgi_conn:
        asgi = WSClient(asgi_conn)
        assert (await native.subscribe("story:bridge"))["seq"] == 1
        assert (await asgi.subscribe("story:bridge"))["seq"] == 1
        assert any(isinstance(c, WebsocketsConnection) for c in hub.hub.connections)
        entries = await hub.publish("bridge")
        a, b = await native.expect("update"), await asgi.expect("update")
        assert a == b
        assert a["seq"] == entries[0].seq
    await until(lambda: not hub.hub.connections, timeout=5.0, interval=0.01)


async def test_other_paths_are_not_found(hub_server: HubServerHandle) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{hub_server.ws_port}/v1/sse"):
            pass
    assert refused.value.response.status_code == 404


async def test_a_client_that_goes_away_leaves_no_trace(hub_server: HubServerHandle) -> None:
    hub = hub_server
    await hub.publish("bridge")
    async with hub.ws() as client:
        await client.subscribe("story:bridge")
    await until(lambda: not hub.hub.connections, timeout=5.0, interval=0.01)
    await until(lambda: not hub.hub.fanout.members("story:bridge"), timeout=5.0, interval=0.01)


def test_hub_ws_port_setting() -> None:
    assert load_settings({}).hub_ws_port == 0
    assert load_settings({"LIVEUPDATES_HUB_WS_PORT": "8001"}).hub_ws_port == 8001
    with pytest.raises(SettingsError, match="hub_ws_port"):
        load_settings({"LIVEUPDATES_HUB_WS_PORT": "70000"})


async def test_messages_sent_with_the_handshake_are_all_answered(
    hub_server: HubServerHandle,
) -> None:
    """A client that sends its subscribes without waiting for answers: frames that arrived before
    the connection was slimmed after its handshake (wsserver.slim_after_handshake) are kept, in
    order."""
    for story in ("bridge", "ferry", "tunnel"):
        await hub_server.publish(story)
    async with hub_server.ws() as client:
        for story in ("bridge", "ferry", "tunnel"):
            await client.send({"type": "subscribe", "channel": f"story:{story}"})
        answers = [await client.expect("subscribed") for _ in range(3)]
    assert [a["channel"] for a in answers] == ["story:bridge", "story:ferry", "story:tunnel"]


def test_list_queue_takes_the_deque_calls_in_deque_order() -> None:
    queue, reference = ListQueue(), collections.deque[int]()
    for q in (queue, reference):
        q.append(1)
        q.append(2)
        q.extendleft(reversed([8, 9]))  # websockets puts frames back this way
        q.append(3)
    assert list(queue) == list(reference) == [8, 9, 1, 2, 3]
    assert [queue.popleft() for _ in range(5)] == [reference.popleft() for _ in range(5)]
