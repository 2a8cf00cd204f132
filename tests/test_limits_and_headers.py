"""Limits for anonymous load (connections, REST rate), browser security headers, admin token
rules, and the start-up warning about an open Origin policy."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from liveupdates.bus import InMemoryBus
from liveupdates.hub import create_app, make_server
from liveupdates.settings import Settings, SettingsError, load_settings
from liveupdates.store.sqlite import SQLiteStore
from tests.support.adminservice import AdminService
from tests.support.hubserver import StartHub
from tests.support.waiting import until

TOKEN = "limits-test-token-0123"
TRANSPORTS = ["uvicorn", "websockets"]


async def _refused_with_1013(url: str) -> str:
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1013
        return ws.close_reason or ""


@contextlib.asynccontextmanager
async def _open(url: str, n: int) -> AsyncIterator[list[ClientConnection]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(connect(url)) for _ in range(n)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_websocket_connections_over_the_total_limit_get_1013(
    start_hub_server: StartHub, transport: str
) -> None:
    hub = await start_hub_server(
        limits_connections=2, websockets_transport=transport == "websockets"
    )
    async with _open(hub.ws_url, 2) as clients:
        await until(lambda: len(hub.hub.connections) == 2)
        reason = await _refused_with_1013(hub.ws_url)
        assert "connection limit" in reason and "retry in 10 s" in reason
        # The ones let in are served as usual.
        await clients[0].send('{"type": "ping"}')
        assert await asyncio.wait_for(clients[0].recv(), 5) == '{"type":"pong"}'
        await clients[1].close()
        await until(lambda: len(hub.hub.connections) == 1)
        async with connect(hub.ws_url) as again:
            await again.send('{"type": "ping"}')
            assert await asyncio.wait_for(again.recv(), 5) == '{"type":"pong"}'


async def test_connections_per_address_count_websocket_and_sse_together(
    start_hub_server: StartHub,
) -> None:
    hub = await start_hub_server(limits_connections_per_address=2)
    await hub.publish("ferry")
    async with (
        _open(hub.ws_url, 1),
        httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http,
        http.stream("GET", "/v1/sse?channel=story:ferry") as first,
    ):
        assert first.status_code == 200
        await until(lambda: len(hub.hub.connections) == 2)
        reason = await _refused_with_1013(hub.ws_url)
        assert "from your address" in reason
        refused = await http.get("/v1/sse?channel=story:ferry")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["error"]["code"] == "rate_limited"
    # Both released: a new client gets in.
    await until(lambda: hub.hub.limits.open == 0)
    async with _open(hub.ws_url, 2):
        await until(lambda: len(hub.hub.connections) == 2)


async def test_public_rest_routes_are_rate_limited_per_address(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(limits_requests_per_second_per_address=2)
    await hub.publish("ferry")
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        statuses = [(await http.get("/v1/stories/ferry")).status_code for _ in range(4)]
        assert statuses == [200] * 4  # a burst of twice the rate
        refused = [await http.get("/v1/feeds/gazette/stories") for _ in range(4)]
        assert 429 in [r.status_code for r in refused]
        limited = next(r for r in refused if r.status_code == 429)
        assert limited.headers["retry-after"] == "1"
        assert "retry in 1 s" in limited.json()["error"]["message"]
        # Health checks are not public content: never limited.
        assert (await http.get("/healthz")).status_code == 200
        # The bucket refills: after the wait it says, requests pass again.
        await until(lambda: _ok(http, "/v1/stories/ferry"), timeout=5, interval=0.25)


async def test_bad_requests_use_up_the_budget_faster(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(limits_requests_per_second_per_address=2)
    await hub.publish("ferry")
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        # A burst of 4; one bad request costs 5 of them, so the next good one waits.
        assert (await http.get("/v1/stories/ferry/updates?since=²")).status_code == 400
        assert (await http.get("/v1/stories/ferry")).status_code == 429


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    return (await http.get(path)).status_code == 200


# -- browser-facing ------------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(tmp_path / "lu.sqlite3", admin_token=TOKEN, hub_demo=True) as svc:
        yield svc


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/static/style.css", "/admin", "/admin/admin.js"]
)
def test_pages_carry_security_headers(service: AdminService, path: str) -> None:
    response = httpx.get(service.url(path))
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_repeated_refused_tokens_from_one_address_are_throttled(service: AdminService) -> None:
    wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
    statuses = [
        httpx.get(service.url("/v1/admin/feeds"), headers=wrong).status_code for _ in range(10)
    ]
    assert statuses == [401] * 10
    throttled = httpx.get(service.url("/v1/admin/feeds"), headers=wrong)
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    # While throttled, the address gets nothing checked, not even a right token.
    assert httpx.get(service.url("/v1/admin/feeds"), headers=service.auth).status_code == 429
    # The public routes are not affected.
    assert httpx.get(service.url("/healthz")).status_code == 200


def test_short_admin_tokens_are_refused_at_start() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"LIVEUPDATES_ADMIN_TOKEN": "s3cret"})
    message = str(err.value)
    assert "admin_token" in message and "16" in message and "\n" not in message
    assert load_settings({"LIVEUPDATES_ADMIN_TOKEN": "a" * 16}).admin_token == "a" * 16


def test_limits_are_settings_with_env_names() -> None:
    settings = load_settings(
        {
            "LIVEUPDATES_LIMITS_CONNECTIONS": "10",
            "LIVEUPDATES_LIMITS_CONNECTIONS_PER_ADDRESS": "3",
            "LIVEUPDATES_LIMITS_REQUESTS_PER_SECOND_PER_ADDRESS": "2.5",
        }
    )
    assert (
        settings.limits_connections,
        settings.limits_connections_per_address,
        settings.limits_requests_per_second_per_address,
    ) == (10, 3, 2.5)
    with pytest.raises(SettingsError, match="limits_connections"):
        load_settings({"LIVEUPDATES_LIMITS_CONNECTIONS": "0"})


@pytest.mark.parametrize(
    ("host", "warned"),
    [("0.0.0.0", True), ("192.0.2.7", True), ("127.0.0.1", False), ("localhost", False)],
)
async def test_an_open_origin_policy_on_a_public_address_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="liveupdates")
    store = SQLiteStore(tmp_path / "lu.sqlite3")
    try:
        settings = dataclasses.replace(Settings(), data_dir=str(tmp_path))
        make_server(create_app(settings, store, InMemoryBus(store)), settings, host=host)
        lines = [r.getMessage() for r in caplog.records if "allowed_origins" in r.getMessage()]
        assert len(lines) == (1 if warned else 0)
        # Naming the origins silences it.
        caplog.clear()
        settings = dataclasses.replace(settings, hub_allowed_origins=("https://news.example",))
        make_server(create_app(settings, store, InMemoryBus(store)), settings, host=host)
        assert not [r for r in caplog.records if "allowed_origins" in r.getMessage()]
    finally:
        await store.close()
