"""Nothing an anonymous client asks about an unknown id may create state (Redis mode, where
every looked-at channel used to get an epoch key with a 7-day TTL)."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tests.support.hubserver import StartHub


async def _keys(client: aioredis.Redis, prefix: str) -> list[str]:
    return sorted([key async for key in client.scan_iter(match=prefix + "*", count=1000)])


async def test_a_flood_of_unknown_ids_leaves_redis_as_it_was(
    start_hub_server: StartHub, redis_url: str, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    # The per-address request limit (200/s, bursts of 400) is not what this test is about: on a
    # quiet machine its 1,010 requests arrive faster than the bucket refills and some get a 429.
    hub = await start_hub_server(
        redis=(redis_url, redis_prefix), limits_requests_per_second_per_address=100_000.0
    )
    await hub.publish("bridge-reopens", feed="gazette")
    before = await _keys(redis_client, redis_prefix)
    assert before  # the one real story is there

    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:

        async def get(path: str) -> int:
            return (await http.get(path)).status_code

        long_ids = [secrets.token_urlsafe(1500)[:2000] for _ in range(500)]
        statuses = await asyncio.gather(*(get(f"/v1/stories/{i}") for i in long_ids[:250]))
        statuses += await asyncio.gather(*(get(f"/v1/stories/{i}") for i in long_ids[250:]))
        feeds = [secrets.token_hex(8) for _ in range(500)]
        statuses += await asyncio.gather(*(get(f"/v1/feeds/{f}/stories") for f in feeds[:250]))
        statuses += await asyncio.gather(*(get(f"/v1/feeds/{f}/stories") for f in feeds[250:]))
        # The other read routes and SSE, with short unknown ids that could exist.
        for unknown in ("no-such-story", secrets.token_hex(8)):
            statuses.append(await get(f"/v1/stories/{unknown}"))
            statuses.append(await get(f"/v1/stories/{unknown}/updates?since=0"))
            statuses.append(await get(f"/v1/stories/{unknown}/versions/1"))
            statuses.append(await get(f"/v1/sse?channel=story:{unknown}"))
            statuses.append(await get(f"/v1/sse?channel=feed:{unknown}"))
    assert set(statuses) == {404}

    async with connect(hub.ws_url) as ws:
        for _ in range(30):
            channel = f"feed:{secrets.token_hex(12)}"
            await ws.send(f'{{"type": "subscribe", "channel": "{channel}"}}')
            reply = await asyncio.wait_for(ws.recv(), 5)
            assert '"unknown_channel"' in reply and channel in reply
        for _ in range(5):
            await ws.send(f'{{"type": "subscribe", "channel": "story:{secrets.token_hex(8)}"}}')
            assert '"unknown_channel"' in await asyncio.wait_for(ws.recv(), 5)

    assert await _keys(redis_client, redis_prefix) == before


async def test_a_known_story_and_feed_are_still_served(
    start_hub_server: StartHub, redis_url: str, redis_prefix: str
) -> None:
    hub = await start_hub_server(redis=(redis_url, redis_prefix))
    await hub.publish("harbour-fire", feed="gazette")
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        story = (await http.get("/v1/stories/harbour-fire")).json()
        assert (story["id"], story["seq"], story["version"]) == ("harbour-fire", 1, 1)
        feed = (await http.get("/v1/feeds/gazette/stories")).json()
        assert [s["id"] for s in feed["stories"]] == ["harbour-fire"]
    async with hub.ws() as client:
        assert (await client.subscribe("feed:gazette", since=0))["seq"] == 1
