"""REST endpoints against the real app on real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from liveupdates.models import FeedConfig
from tests.support.hubserver import DEADLINE, HubServerHandle, StartHub


@pytest.fixture
async def http(hub_server: HubServerHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub_server.base_url, timeout=DEADLINE) as client:
        yield client


def _assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"]


async def test_healthz(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_current_story(hub_server: HubServerHandle, http: httpx.AsyncClient) -> None:
    await hub_server.publish("bridge", title="Bridge reopens")
    await hub_server.publish("bridge", title="Bridge reopens after eleven weeks")
    body = (await http.get("/v1/stories/bridge")).json()
    assert body == {
        "id": "bridge",
        "feed": "gazette",
        "url": "https://gazette.example/news/bridge",
        "title": "Bridge reopens after eleven weeks",
        "summary": "summary 2",
        "authors": [],
        "published": None,
        "updated": None,
        "version": 2,
        "paragraphs": ["First paragraph."],
        "channel": "story:bridge",
        "seq": 2,
        "epoch": hub_server.store.epoch,
    }
    _assert_not_found(await http.get("/v1/stories/nope"))


async def test_versions(hub_server: HubServerHandle, http: httpx.AsyncClient) -> None:
    await hub_server.publish("bridge", title="first")
    await hub_server.publish("bridge", title="second")
    first = (await http.get("/v1/stories/bridge/versions/1")).json()
    assert (first["title"], first["version"]) == ("first", 1)
    assert first["at"]
    _assert_not_found(await http.get("/v1/stories/bridge/versions/3"))
    _assert_not_found(await http.get("/v1/stories/nope/versions/1"))
    for bad in ("0", "x", "-1"):
        response = await http.get(f"/v1/stories/bridge/versions/{bad}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "bad_request"


async def test_updates_since(hub_server: HubServerHandle, http: httpx.AsyncClient) -> None:
    for _ in range(5):
        entries = await hub_server.publish("bridge")
    body = (await http.get("/v1/stories/bridge/updates", params={"since": 1, "limit": 2})).json()
    assert body["channel"] == "story:bridge"
    assert (body["seq"], body["epoch"]) == (5, hub_server.store.epoch)
    assert body["recovered"] is True
    assert body["more"] is True
    assert [u["seq"] for u in body["updates"]] == [2, 3]
    assert body["updates"][0] == {
        "type": "update",
        "channel": "story:bridge",
        "seq": 2,
        "event": body["updates"][0]["event"],
    }
    rest = (await http.get("/v1/stories/bridge/updates", params={"since": 3})).json()
    assert [u["seq"] for u in rest["updates"]] == [4, 5]
    assert rest["more"] is False
    assert rest["updates"][-1]["event"] == entries[0].event
    everything = (await http.get("/v1/stories/bridge/updates")).json()
    assert len(everything["updates"]) == 5
    up_to_date = (await http.get("/v1/stories/bridge/updates", params={"since": 5})).json()
    assert (up_to_date["updates"], up_to_date["recovered"]) == ([], True)


async def test_updates_reset_when_history_is_gone(start_hub_server: StartHub) -> None:
    hub = await start_hub_server(log_retention=2)
    for _ in range(4):
        await hub.publish("bridge")
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=DEADLINE) as http:
        body = (await http.get("/v1/stories/bridge/updates", params={"since": 0})).json()
        assert (body["recovered"], body["updates"], body["seq"]) == (False, [], 4)
        assert body["reset"]["type"] == "reset"
        assert body["reset"]["snapshot"]["version"] == 4
        epoch = (
            await http.get("/v1/stories/bridge/updates", params={"since": 3, "epoch": "other"})
        ).json()
        assert epoch["recovered"] is False
        kept = (
            await http.get(
                "/v1/stories/bridge/updates", params={"since": 2, "epoch": hub.store.epoch}
            )
        ).json()
        assert [u["seq"] for u in kept["updates"]] == [3, 4]


async def test_updates_bad_parameters(hub_server: HubServerHandle, http: httpx.AsyncClient) -> None:
    await hub_server.publish("bridge")
    for params in ({"since": "-1"}, {"since": "x"}, {"limit": "0"}, {"limit": "100000"}):
        response = await http.get("/v1/stories/bridge/updates", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "bad_request"
    _assert_not_found(await http.get("/v1/stories/nope/updates"))


async def test_story_by_url(hub_server: HubServerHandle, http: httpx.AsyncClient) -> None:
    await hub_server.publish("bridge")
    found = await http.get(
        "/v1/stories", params={"url": "HTTPS://Gazette.example/news/bridge?utm_source=x#top"}
    )
    assert found.status_code == 200
    assert (found.json()["id"], found.json()["seq"]) == ("bridge", 1)
    _assert_not_found(await http.get("/v1/stories", params={"url": "https://gazette.example/x"}))
    missing = await http.get("/v1/stories")
    assert missing.status_code == 400


async def test_feed_stories(hub_server: HubServerHandle, http: httpx.AsyncClient) -> None:
    await hub_server.publish("bridge")
    await hub_server.publish("ferry")
    await hub_server.publish("bridge")  # most recently changed comes first
    body = (await http.get("/v1/feeds/gazette/stories")).json()
    assert [(s["id"], s["version"]) for s in body["stories"]] == [("bridge", 2), ("ferry", 1)]
    assert (await http.get("/v1/feeds/gazette/stories", params={"limit": "1"})).json()["stories"][
        0
    ]["id"] == "bridge"
    _assert_not_found(await http.get("/v1/feeds/nope/stories"))
    await hub_server.store.upsert_feed(FeedConfig(id="quiet", url="https://q.example/feed"))
    assert (await http.get("/v1/feeds/quiet/stories")).json()["stories"] == []
    assert (await http.get("/v1/feeds/gazette/stories", params={"limit": "x"})).status_code == 400


async def test_feeds_list_pages_every_feed(
    hub_server: HubServerHandle, http: httpx.AsyncClient
) -> None:
    store = hub_server.store
    await store.upsert_feed(
        FeedConfig(id="gazette", url="https://user:pw@gazette.example/rss?key=s3", title="Gazette")
    )
    await store.upsert_feed(FeedConfig(id="quiet", url="https://q.example/feed"))
    await store.upsert_feed(FeedConfig(id="alder", url="https://alder.example:8443/a.xml"))
    await hub_server.publish("bridge")
    await hub_server.publish("ferry")

    first = (await http.get("/v1/feeds", params={"limit": "2"})).json()
    assert [f["id"] for f in first["feeds"]] == ["alder", "gazette"]
    gazette = first["feeds"][1]
    newest = await store.latest("ferry")
    assert newest is not None
    assert gazette == {
        "id": "gazette",
        "title": "Gazette",
        "link": "https://gazette.example/",  # neither the credentials nor the key are shown
        "stories": 2,
        "last_update": newest.at,
        "channel": "feed:gazette",
    }
    assert first["feeds"][0]["link"] == "https://alder.example:8443/"
    assert first["feeds"][0]["title"] == "alder"  # no title configured: the id
    assert first["next_cursor"]

    rest = (
        await http.get("/v1/feeds", params={"limit": "2", "cursor": first["next_cursor"]})
    ).json()
    assert [f["id"] for f in rest["feeds"]] == ["quiet"]
    assert rest["next_cursor"] is None
    everything = (await http.get("/v1/feeds")).json()
    assert [f["id"] for f in everything["feeds"]] == ["alder", "gazette", "quiet"]


async def test_feeds_list_refuses_bad_parameters(
    hub_server: HubServerHandle, http: httpx.AsyncClient
) -> None:
    bad = [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "-1"},
        {"limit": "\u0661\u0660"},  # Arabic-Indic 10: isdigit() but not ASCII
        {"limit": "9" * 400},
        {"cursor": "not a cursor"},
        {"cursor": "@@@"},
        {"cursor": "A" * 1000},
        {"cursor": "_w"},  # base64 of a byte that is not UTF-8
    ]
    for params in bad:
        response = await http.get("/v1/feeds", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "bad_request", params
