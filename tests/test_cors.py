"""CORS on the public REST and SSE routes, from hub.allowed_origins (liveupdates/api/cors.py),
against a real hub over loopback HTTP."""

from __future__ import annotations

import httpx

from tests.support.hubserver import HubServerHandle, StartHub

NEWSROOM = "https://news.example"
OTHER = "https://elsewhere.example"


async def test_allowed_origin_may_read_public_routes(start_hub_server: StartHub) -> None:
    hub: HubServerHandle = await start_hub_server(hub_allowed_origins=(NEWSROOM,))
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        for path in ("/v1/feeds", "/v1/stories/nope", "/v1/sse?channel=story:nope", "/healthz"):
            answer = await http.get(path, headers={"Origin": NEWSROOM})
            assert answer.headers.get("access-control-allow-origin") == NEWSROOM, path
            assert "Retry-After" in answer.headers.get("access-control-expose-headers", "")
            refused = await http.get(path, headers={"Origin": OTHER})
            assert "access-control-allow-origin" not in refused.headers, path


async def test_preflight_is_answered_for_allowed_origins_only(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_allowed_origins=(NEWSROOM + "/",))
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
    }
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        ok = await http.options("/v1/sse", headers={"Origin": NEWSROOM, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == NEWSROOM
        assert "last-event-id" in ok.headers["access-control-allow-headers"].lower()
        refused = await http.options("/v1/sse", headers={"Origin": OTHER, **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


async def test_empty_allow_list_allows_any_origin(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_allowed_origins=())
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        answer = await http.get("/v1/feeds", headers={"Origin": OTHER})
    assert answer.headers["access-control-allow-origin"] == "*"


async def test_pages_get_no_cors_headers(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(hub_allowed_origins=())
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        answer = await http.get("/docs", headers={"Origin": OTHER})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
