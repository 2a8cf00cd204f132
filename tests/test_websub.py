"""WebSub intake end to end: the real app (`serve`: web + poller in one process, SQLite) under
uvicorn, a loopback feed server and a loopback WebSub hub (tests/support/websubhub.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from liveupdates import metrics
from liveupdates.backends import open_backends
from liveupdates.feeds.fetch import Fetcher
from liveupdates.hub.app import make_server
from liveupdates.ingest import Ingestor
from liveupdates.models import FeedConfig, WebSubSubscription
from liveupdates.server import build_app
from liveupdates.settings import Settings
from liveupdates.store.sqlite import SQLiteStore
from liveupdates.websub.signature import sign
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import BRIDGE, bridge_story, rss
from tests.support.uvicorn_serving import bound_socket, serve_until_started
from tests.support.waiting import until
from tests.support.websubhub import WebSubHub
from workers.main import running_poller

TOKEN = "websub-test-token"
NEW_PARAGRAPH = "By noon the harbour master reported the first queue of lorries since September."
LATER_PARAGRAPH = "The ferry crew will be thanked at a small ceremony on the quay on Saturday."


def feed_body(paragraphs: list[str], *, hub: str | None = None, topic: str | None = None) -> bytes:
    """The bridge story as RSS; with `hub`, the hub (and self) named by atom:link elements."""
    body = rss([bridge_story(paragraphs=paragraphs)]).decode()
    if hub:
        links = f'<atom:link rel="hub" href="{hub}"/>'
        if topic:
            links += f'<atom:link rel="self" href="{topic}" type="application/rss+xml"/>'
        body = body.replace(
            '<rss version="2.0"', '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"'
        )
        body = body.replace("<channel>", "<channel>" + links, 1)
    return body.encode()


class Service:
    """`liveupdates serve` in the test's loop, with WebSub on (public_url is its own address)."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.sock = bound_socket()
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        values = {
            "data_dir": str(tmp_path),
            "hub_demo": False,
            "admin_token": TOKEN,
            "public_url": self.base_url,
            "poll_min_interval": 0.2,
            "poll_jitter": 0.0,
            # the feed server and the hub listen on loopback, which the address guard refuses
            "fetch_allow_networks": (ALLOW_LOOPBACK,),
            **overrides,
        }
        self.settings = dataclasses.replace(Settings(), **values)
        self.backends = open_backends(self.settings)
        self.store = self.backends.store
        self.wstore = self.backends.websub
        self.app = build_app(
            self.settings, self.backends, run_poller=running_poller, self_url=self.base_url
        )
        self.server = make_server(
            self.app, self.settings, host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.http = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self, *feeds: FeedConfig) -> Service:
        for feed in feeds:
            await self.store.upsert_feed(feed)
        self.task = await serve_until_started(self.server, self.sock, "liveupdates")
        return self

    async def stop(self) -> None:
        await self.http.aclose()
        if self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 15)
        self.sock.close()
        await self.backends.close()

    async def websub(self, feed_id: str = "gazette") -> dict[str, Any]:
        answer = await self.http.get(f"/v1/admin/feeds/{feed_id}")
        answer.raise_for_status()
        return answer.json()["health"]["websub"]

    async def active(self, feed_id: str = "gazette") -> WebSubSubscription:
        async def ready() -> WebSubSubscription | None:
            sub = await self.wstore.get(feed_id)
            return sub if sub is not None and sub.state == "active" else None

        return await until(ready, 10, f"feed {feed_id} never became active")


StartService = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start_service(tmp_path: Path) -> AsyncIterator[StartService]:
    services: list[Service] = []

    async def start(*feeds: FeedConfig, **overrides: Any) -> Service:
        service = Service(tmp_path / f"s{len(services)}", **overrides)
        services.append(service)
        return await service.start(*feeds)

    yield start
    for service in services:
        await service.stop()


class Reader:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.conn.recv(), timeout))

    async def update(self) -> dict[str, Any]:
        message = await self.recv()
        assert message["type"] == "update", message
        return message


@contextlib.asynccontextmanager
async def reader(port: int, channel: str) -> AsyncIterator[Reader]:
    async with connect(f"ws://127.0.0.1:{port}/v1/ws") as conn:
        client = Reader(conn)
        await conn.send(json.dumps({"type": "subscribe", "channel": channel}))
        assert (await client.recv())["type"] == "subscribed"
        yield client


def gazette(feed_server: FeedServer, **changes: Any) -> FeedConfig:
    return FeedConfig(id="gazette", url=feed_server.url("/feed.xml"), **changes)


async def subscribed(
    start_service: StartService,
    feed_server: FeedServer,
    hub: WebSubHub,
    **overrides: Any,
) -> tuple[Service, WebSubSubscription, str]:
    """A service whose gazette feed (atom:link hub) is subscribed and verified."""
    topic = feed_server.url("/feed.xml")
    feed_server.set("/feed.xml", feed_body(BRIDGE[:2], hub=hub.url, topic=topic))
    service = await start_service(gazette(feed_server, interval_seconds=60), **overrides)
    sub = await service.active()
    # The service records the subscription when it answers the challenge; the hub records it
    # only once that answer has reached it, so wait for both sides before publishing.
    await until(lambda: hub.active(topic), 10, "the hub never recorded the subscription")
    return service, sub, topic


# -- discovery, subscribe, verify ------------------------------------------------------------


async def test_discovery_from_link_headers(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    topic = "http://127.0.0.1:1/canonical.xml"  # the Link self URL, not the fetched URL
    link = f'<{websub_hub.url}>; rel="hub", <{topic}>; rel="self"'
    # The document names another hub: the header wins.
    body = feed_body(BRIDGE[:2], hub="http://127.0.0.1:1/other-hub")
    feed_server.set("/feed.xml", body, headers={"Link": link})
    service = await start_service(gazette(feed_server))

    await until(lambda: any(v.confirmed for v in websub_hub.verifications), 10)
    request = websub_hub.requests[0]
    assert (request.mode, request.topic) == ("subscribe", topic)
    assert request.callback.startswith(f"{service.base_url}/v1/websub/gazette~")
    assert request.secret and request.lease_seconds == "86400"
    view = await until(lambda: _active_view(service), 10)
    assert view["hub"] == websub_hub.url and view["topic"] == topic
    audit = (await service.http.get("/v1/admin/audit")).json()["audit"]
    assert {"websub.subscribe", "websub.subscribed"} <= {a["action"] for a in audit}


async def _active_view(service: Service) -> dict[str, Any] | None:
    view = await service.websub()
    return view if view["state"] == "active" else None


async def test_discovery_from_atom_link_subscribes_and_verifies(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    service, sub, topic = await subscribed(start_service, feed_server, websub_hub)
    assert sub.topic == topic and sub.hub == websub_hub.url
    [verification] = [v for v in websub_hub.verifications if v.mode == "subscribe"]
    assert verification.confirmed
    assert websub_hub.active(topic)
    view = await until(lambda: _active_view(service), 10)
    assert view["summary"].startswith("active until ")


async def test_a_hub_at_a_refused_address_is_never_contacted_and_the_feed_is_polled(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    # The feed (127.0.0.1, allowed for the test) names a hub on another loopback address, which
    # fetch.allow_networks does not allow: the hub client's guard refuses it before connecting.
    hub = websub_hub.url.replace("127.0.0.1", "127.0.0.2")
    feed_server.set("/feed.xml", feed_body(BRIDGE[:2], hub=hub))
    service = await start_service(gazette(feed_server, interval_seconds=0.3, adaptive=False))
    view = await until(lambda: _view_in(service, "failed"), 10, "the subscription never failed")
    assert view["summary"] == (
        "failed: hub refused: address 127.0.0.2 is loopback; see fetch.allow_networks"
    )
    assert websub_hub.requests == []
    polls = feed_server.count("/feed.xml")
    await until(lambda: feed_server.count("/feed.xml") >= polls + 2, 10, "not polled")


async def test_opted_out_feed_is_not_subscribed_and_health_says_why(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    feed_server.set("/feed.xml", feed_body(BRIDGE[:2], hub=websub_hub.url))
    service = await start_service(gazette(feed_server, interval_seconds=0.3, websub=False))
    await until(lambda: feed_server.count("/feed.xml") >= 3, 10)
    assert websub_hub.requests == []
    view = await service.websub()
    assert view["state"] == "off" and "websub = false" in view["reason"]


# -- content distribution ------------------------------------------------------------------------


async def test_push_reaches_a_reader_as_one_update_with_the_polling_diff(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    service, _sub, topic = await subscribed(start_service, feed_server, websub_hub)
    await until(lambda: service.store.feed_stories("gazette"), 10)
    new = feed_body([*BRIDGE[:2], NEW_PARAGRAPH], hub=websub_hub.url, topic=topic)
    async with reader(service.port, "feed:gazette") as client:
        assert await websub_hub.publish(topic, new) == [202]
        update = await client.update()
        assert update["event"]["kind"] == "updated"
        pushed_diff = update["event"]["diff"]
        # The same body pushed again is no news; the next frame is the next change.
        later = feed_body([*BRIDGE[:2], NEW_PARAGRAPH, LATER_PARAGRAPH], hub=websub_hub.url)
        await websub_hub.publish(topic, new)
        await websub_hub.publish(topic, later)
        following = await client.update()
        assert following["seq"] == update["seq"] + 1
        assert following["event"]["story"]["version"] == 3

    # What polling the same two documents gives.
    feed_server.set("/compare.xml", feed_body(BRIDGE[:2]))
    store = SQLiteStore.memory()
    async with Fetcher(allow_networks=[ALLOW_LOOPBACK]) as fetcher:
        ingestor = Ingestor(store, fetcher)
        feed = FeedConfig(id="gazette", url=feed_server.url("/compare.xml"))
        await ingestor.poll(feed)
        feed_server.set("/compare.xml", feed_body([*BRIDGE[:2], NEW_PARAGRAPH]))
        report = await ingestor.poll(feed)
    await store.close()
    [polled] = report.events
    assert pushed_diff == polled["diff"]
    assert NEW_PARAGRAPH in json.dumps(pushed_diff)
    view = await service.websub()
    assert view["pushes"] == 3 and view["bad_signatures"] == 0 and view["last_push_at"]


async def test_bad_signature_and_unknown_callback_change_nothing(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    service, sub, topic = await subscribed(
        start_service, feed_server, websub_hub, fetch_max_body_bytes=16384
    )
    await until(lambda: service.store.feed_stories("gazette"), 10)
    bad_before = metrics.value("liveupdates_websub_pushes_total", result="bad_signature")
    forged = feed_body([*BRIDGE[:2], "A forged paragraph nobody published."])
    good = feed_body([*BRIDGE[:2], NEW_PARAGRAPH])
    async with reader(service.port, "feed:gazette") as client, httpx.AsyncClient() as http:
        assert await websub_hub.publish(topic, forged, bad_signature=True) == [202]
        unsigned = await http.post(f"{service.base_url}/v1/websub/{sub.token}", content=forged)
        assert unsigned.status_code == 202
        # Over the fetch body cap: refused like a fetched body would be.
        huge = forged + b"<!--" + b"x" * 20000 + b"-->"
        too_big = await http.post(
            f"{service.base_url}/v1/websub/{sub.token}",
            content=huge,
            headers={"X-Hub-Signature": sign(sub.secret, huge)},
        )
        assert too_big.status_code == 413
        # Right secret, wrong callback: not ours.
        stranger = f"{service.base_url}/v1/websub/gazette~{'x' * 43}"
        answer = await http.post(
            stranger, content=forged, headers={"X-Hub-Signature": sign(sub.secret, forged)}
        )
        assert answer.status_code == 410
        # Verification that matches nothing we asked for: 404, and the subscription stays.
        for params in (
            {"hub.mode": "unsubscribe", "hub.topic": topic, "hub.challenge": "c"},
            {"hub.mode": "subscribe", "hub.topic": "http://elsewhere/", "hub.challenge": "c"},
        ):
            got = await http.get(f"{service.base_url}/v1/websub/{sub.token}", params=params)
            assert got.status_code == 404
        got = await http.get(stranger, params={"hub.mode": "subscribe", "hub.topic": topic})
        assert got.status_code == 404
        assert (await service.wstore.get("gazette")).state == "active"  # type: ignore[union-attr]
        # The first update a reader sees is the genuine one.
        assert await websub_hub.publish(topic, good) == [202]
        update = await client.update()
        assert NEW_PARAGRAPH in json.dumps(update["event"]["diff"])
        assert "forged" not in json.dumps(update["event"])
    view = await service.websub()
    assert view["bad_signatures"] == 2 and view["pushes"] == 1
    bad_after = metrics.value("liveupdates_websub_pushes_total", result="bad_signature")
    assert bad_after - bad_before == 2


async def test_pushed_then_polled_is_one_version(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    service, _sub, topic = await subscribed(start_service, feed_server, websub_hub)
    [story] = await until(lambda: service.store.feed_stories("gazette"), 10)
    new = feed_body([*BRIDGE[:2], NEW_PARAGRAPH], hub=websub_hub.url, topic=topic)
    async with reader(service.port, "feed:gazette") as client:
        await websub_hub.publish(topic, new)
        await client.update()
    feed_server.set("/feed.xml", new)  # the origin now serves what the hub pushed
    answer = await service.http.post("/v1/admin/feeds/gazette/poll")
    assert answer.json()["outcome"]["status"] == "ok"
    assert answer.json()["outcome"]["events"] == 0
    latest = await service.store.latest(story.snapshot.id)
    assert latest is not None and latest.version == 2


# -- leases and falling back to polling ----------------------------------------------------------


async def test_hub_denies_and_the_feed_is_polled(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    websub_hub.deny = True
    feed_server.set("/feed.xml", feed_body(BRIDGE[:2], hub=websub_hub.url))
    service = await start_service(gazette(feed_server, interval_seconds=0.5, adaptive=False))
    view = await until(lambda: _view_in(service, "denied"), 10, "the denial was never recorded")
    assert view["summary"] == "denied: not allowed here"
    # Polled at its own interval, not at the (900 s) fallback.
    seen = feed_server.count("/feed.xml")
    await until(lambda: feed_server.count("/feed.xml") >= seen + 3, 10)


async def _view_in(service: Service, state: str) -> dict[str, Any] | None:
    view = await service.websub()
    return view if view["state"] == state else None


async def test_lease_is_renewed_before_it_expires(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    websub_hub.lease_seconds = 8
    service, _sub, _topic = await subscribed(start_service, feed_server, websub_hub)
    first = next(v for v in websub_hub.verifications if v.confirmed)
    await until(
        lambda: sum(v.confirmed and v.mode == "subscribe" for v in websub_hub.verifications) >= 2,
        20,
        "the lease was not renewed",
    )
    renewal = [v for v in websub_hub.verifications if v.confirmed][1]
    # The service asked for the renewal before the first lease ran out (the hub's answer may
    # come later on a loaded machine; what the service controls is when it asks).
    [_, renewal_request] = [r for r in websub_hub.requests if r.mode == "subscribe"][:2]
    assert renewal_request.at < first.at + 8
    assert renewal.callback == first.callback  # same callback, same subscription
    renewed = await service.wstore.get("gazette")
    assert renewed is not None and renewed.state == "active"
    assert renewed.expires_at is not None and renewed.expires_at > first.at + 8


async def test_lapsed_lease_falls_back_to_polling_at_once(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    service, sub, _topic = await subscribed(
        start_service, feed_server, websub_hub, websub_fallback_interval=900.0
    )
    polls = feed_server.count("/feed.xml")
    # The hub goes away without a word; the lease runs out (simulated by ending it in the store).
    sub.expires_at = 1.0
    await service.wstore.put(sub)
    await until(lambda: feed_server.count("/feed.xml") > polls, 10, "no poll after the lapse")
    view = await service.websub()
    assert view["state"] in ("failed", "pending", "active")


@pytest.mark.parametrize("how", ["removed", "opted out"])
async def test_removed_or_opted_out_feed_is_unsubscribed_and_verified(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub, how: str
) -> None:
    service, _sub, topic = await subscribed(start_service, feed_server, websub_hub)
    if how == "removed":
        answer = await service.http.delete("/v1/admin/feeds/gazette")
    else:
        bad = await service.http.patch("/v1/admin/feeds/gazette", json={"websub": "no"})
        assert bad.status_code == 400
        answer = await service.http.patch("/v1/admin/feeds/gazette", json={"websub": False})
        assert answer.json()["websub"] is False
    assert answer.status_code == 200
    await until(
        lambda: any(v.mode == "unsubscribe" and v.confirmed for v in websub_hub.verifications),
        10,
        "the unsubscribe was not verified",
    )
    assert websub_hub.active(topic) == []
    assert await until(lambda: _gone(service), 5)
    audit = (await service.http.get("/v1/admin/audit")).json()["audit"]
    assert {"websub.unsubscribe", "websub.unsubscribed"} <= {a["action"] for a in audit}
    if how == "opted out":
        # Still polled, and not subscribed again by the next fetch.
        polls = feed_server.count("/feed.xml")
        await service.http.post("/v1/admin/feeds/gazette/poll")
        assert feed_server.count("/feed.xml") == polls + 1
        assert [r.mode for r in websub_hub.requests] == ["subscribe", "unsubscribe"]


async def _gone(service: Service) -> bool:
    return await service.wstore.get("gazette") is None


async def test_without_public_url_websub_is_off(
    start_service: StartService, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    feed_server.set("/feed.xml", feed_body(BRIDGE[:2], hub=websub_hub.url))
    service = await start_service(gazette(feed_server, interval_seconds=0.3), public_url=None)
    await until(lambda: feed_server.count("/feed.xml") >= 2, 10)
    assert websub_hub.requests == []
    view = await service.websub()
    assert view["state"] == "off" and "public_url" in view["reason"]
    async with httpx.AsyncClient() as http:
        got = await http.post(f"{service.base_url}/v1/websub/gazette~{'a' * 43}", content=b"x")
    assert got.status_code == 404
