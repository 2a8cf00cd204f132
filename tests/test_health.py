"""/healthz tells the truth about the store and the bus, and a Redis outage is 503 JSON with one
log line, not a 500 with a traceback per request."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.hubserver import HubServerHandle, StartHub
from tests.support.processes import free_port
from tests.support.redis_server import RedisServerProcess
from tests.support.waiting import until


async def test_healthz_is_ok_in_embedded_mode(hub_server: HubServerHandle) -> None:
    async with httpx.AsyncClient(base_url=hub_server.base_url) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["store"], body["bus"]) == ("ok", "ok", "ok")


async def test_healthz_is_503_when_nothing_answers_at_the_redis_address(
    start_hub_server: StartHub,
) -> None:
    # A port nothing listens on: Redis is "down" from the start.
    hub = await start_hub_server(redis=(f"redis://127.0.0.1:{free_port()}/0", "lutest:down:"))
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        response = await http.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["store"], body["bus"]) == ("unavailable", "down", "down")
    assert "ConnectionError" in body["reason"]


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A redis-server of this test's own, which it stops and starts again."""
    redis = RedisServerProcess(tmp_path, persistent=False).start()
    yield redis
    redis.stop()


async def test_a_redis_outage_is_503_json_and_one_log_line(
    start_hub_server: StartHub,
    throwaway_redis: RedisServerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="liveupdates")
    prefix = f"lutest:{uuid.uuid4().hex[:8]}:"
    hub = await start_hub_server(redis=(throwaway_redis.url, prefix))
    await hub.publish("tram-strike", feed="gazette")
    async with (
        httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http,
        hub.ws() as reader,  # a live reader keeps the bus's Redis reader running
    ):
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/v1/stories/tram-strike")).status_code == 200
        await reader.subscribe("story:tram-strike")

        throwaway_redis.stop()
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["store"] == "down" and health.json()["reason"]
        for path in (
            "/v1/stories/tram-strike",
            "/v1/stories/tram-strike/updates?since=0",
            "/v1/stories/tram-strike/versions/1",
            "/v1/feeds/gazette/stories",
            "/v1/stories?url=https://gazette.example/news/tram-strike",
            "/v1/sse?channel=story:tram-strike",
        ) * 3:
            response = await http.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"] == "application/json"
            assert response.headers["retry-after"].isdigit()
            assert response.json()["error"]["code"] == "unavailable"
        # A WebSocket subscribe while the store is down: told to come back (1013), not 1011.
        async with connect(hub.ws_url) as ws:
            await ws.send('{"type": "subscribe", "channel": "story:tram-strike"}')
            with pytest.raises(Exception):  # noqa: B017 - ConnectionClosed of either kind
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1013
            assert "retry" in (ws.close_reason or "")

        down_lines = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(down_lines) == 1, [r.getMessage() for r in caplog.records]
        assert all(r.exc_info is None for r in caplog.records if r.name.startswith("liveupdates"))

        throwaway_redis.start()  # empty again: the story is gone, but the service answers
        await until(
            lambda: _status(http, "/healthz", 200), timeout=15, message="healthz never recovered"
        )
        assert (await http.get("/v1/stories/tram-strike")).status_code == 404
    assert any("store or bus back after" in r.getMessage() for r in caplog.records)
    # The bus reader retried with backoff throughout, and said so once.
    assert hub.bus.reconnects >= 1  # type: ignore[attr-defined]
    assert len([r for r in caplog.records if "bus lost Redis" in r.getMessage()]) == 1


async def _status(http: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await http.get(path)).status_code == status
