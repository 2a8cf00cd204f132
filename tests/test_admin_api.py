"""The admin API on a real running service (uvicorn, SQLite, embedded poller, loopback feeds)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from liveupdates.events import utcnow_iso
from liveupdates.ops.api import admin_routes
from liveupdates.ops.openapi import openapi_schema
from liveupdates.settings import Settings
from tests.support.adminservice import AdminService
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import bridge_story, rss
from tests.support.uvicorn_serving import bound_socket, serve_until_started
from tests.support.waiting import until

TOKEN = "s3cret-admin-token"
ALICE = "alice-token-0123456789"


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(
        tmp_path / "lu.sqlite3", admin_token=TOKEN, admin_tokens={"alice": ALICE}
    ) as svc:
        yield svc


@pytest.fixture
async def client(service: AdminService) -> Any:
    async with httpx.AsyncClient(base_url=service.base_url, headers=service.auth, timeout=10) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    if code:
        assert error["code"] == code
    return str(error["message"])


async def test_no_token_configured_answers_503_with_how_to(tmp_path: Path) -> None:
    with AdminService(tmp_path / "lu.sqlite3") as svc:
        async with httpx.AsyncClient(base_url=svc.base_url) as c:
            for headers in ({}, {"Authorization": "Bearer anything"}):
                message = assert_error(await c.get("/v1/admin/feeds", headers=headers), 503)
                assert "LIVEUPDATES_ADMIN_TOKEN" in message


async def test_wrong_or_missing_token_is_401_and_named_tokens_work(service: AdminService) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as c:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ):
            r = await c.get("/v1/admin/feeds", headers=headers)
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
        for token in (TOKEN, ALICE):
            r = await c.get("/v1/admin/feeds", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.json() == {"feeds": []}
        # Writes are guarded like reads.
        r = await c.post("/v1/admin/feeds", json={"url": "https://x.example/rss"})
        assert_error(r, 401)


async def test_validation_errors(client: httpx.AsyncClient, feed_server: FeedServer) -> None:
    url = feed_server.url("/a.xml")
    feed_server.set("/a.xml", rss([bridge_story()]))
    post = "/v1/admin/feeds"
    assert_error(await client.post(post, content=b"{not json"), 400, "bad_json")
    assert_error(await client.post(post, json=[url]), 400)
    assert_error(await client.post(post, json={"url": url, "colour": "red"}), 400)
    assert_error(await client.post(post, json={"title": "no url"}), 400)
    assert_error(await client.post(post, json={"url": url, "interval_seconds": "10s"}), 400)
    assert_error(await client.post(post, json={"url": url, "paused": "yes"}), 400)
    assert_error(await client.post(post, json={"url": url, "interval_seconds": 0.01}), 422)
    assert_error(await client.post(post, json={"url": url, "interval_seconds": 90000}), 422)
    assert_error(await client.post(post, json={"url": "ftp://x.example/rss"}), 422, "invalid_url")
    assert_error(await client.post(post, json={"url": "javascript:alert(1)"}), 422)
    assert_error(await client.post(post, json={"url": url, "id": "../etc"}), 422, "invalid_id")
    # A trailing newline would end up in the Location header.
    assert_error(await client.post(post, json={"url": url, "id": "a\n"}), 422, "invalid_id")

    r = await client.post(post, json={"url": url, "id": "a", "interval_seconds": 3600})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/v1/admin/feeds/a"
    other = feed_server.url("/b.xml")
    assert_error(await client.post(post, json={"url": other, "id": "a"}), 409, "duplicate_id")
    assert_error(await client.post(post, json={"url": url, "id": "b"}), 409, "duplicate_url")
    await client.post(post, json={"url": other, "id": "b", "interval_seconds": 3600})
    patch = "/v1/admin/feeds/b"
    assert_error(await client.patch(patch, json={"url": url}), 409, "duplicate_url")
    assert_error(await client.patch(patch, json={"interval_seconds": 1e9}), 422)
    assert_error(await client.patch(patch, json={"id": "c"}), 400)
    assert_error(await client.patch(patch, json={}), 400)
    assert_error(await client.patch(patch, content=b""), 400)

    for method, path in (
        ("GET", "/v1/admin/feeds/nope"),
        ("PATCH", "/v1/admin/feeds/nope"),
        ("DELETE", "/v1/admin/feeds/nope"),
        ("POST", "/v1/admin/feeds/nope/poll"),
        ("GET", "/v1/admin/nothing-here"),
    ):
        kwargs: dict[str, Any] = {"json": {"paused": True}} if method == "PATCH" else {}
        assert_error(await client.request(method, path, **kwargs), 404, "not_found")
    assert_error(await client.get("/v1/admin/audit?limit=x"), 400)
    assert_error(await client.get("/v1/admin/audit?limit=0"), 422)


async def test_crud_health_poll_now_and_audit(
    service: AdminService, client: httpx.AsyncClient, feed_server: FeedServer
) -> None:
    feed_server.set("/gazette.xml", rss([bridge_story()]), etag=True)
    r = await client.post(
        "/v1/admin/feeds",
        json={"url": feed_server.url("/gazette.xml"), "title": "Gazette", "interval_seconds": 3600},
    )
    assert r.status_code == 201, r.text
    feed = r.json()
    feed_id = feed["id"]
    assert feed_id.startswith("127-0-0-1-")  # derived from the URL when not given
    assert (feed["title"], feed["interval_seconds"], feed["paused"], feed["adaptive"]) == (
        "Gazette",
        3600,
        False,
        True,
    )

    async def polled() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/admin/feeds/{feed_id}")).json()
        return body if body["health"]["last_result"] == "ok" else None

    # A new feed is polled at once by the running scheduler.
    feed = await until(polled)
    health = feed["health"]
    assert health["status"] == "ok"
    assert health["stories"] == 1 and health["entries_last_poll"] == 1
    assert health["consecutive_errors"] == 0 and health["last_error"] is None
    assert health["etag"] and health["etag"].startswith('"')
    assert ts(health["last_poll_at"]) <= time.time() + 1
    # The adaptive rule: the poll found a new story (live), so within the interval.
    await until(
        lambda: _next_poll_within(client, feed_id, 0, 3600 + 5),
    )

    # Ops make it hot: the next poll time moves at once, without waiting for the old hour.
    r = await client.patch(f"/v1/admin/feeds/{feed_id}", json={"interval_seconds": 2})
    assert r.status_code == 200
    assert r.json()["interval_seconds"] == 2
    nxt = ts(r.json()["health"]["next_poll_at"])
    assert time.time() - 1 <= nxt <= time.time() + 2.5

    # Pause: no next poll; resume: one again.
    r = await client.patch(f"/v1/admin/feeds/{feed_id}", json={"paused": True})
    assert r.json()["paused"] is True
    assert r.json()["health"]["status"] == "paused"
    assert r.json()["health"]["next_poll_at"] is None
    r = await client.patch(f"/v1/admin/feeds/{feed_id}", json={"paused": False})
    assert r.json()["health"]["next_poll_at"] is not None

    # Poll now, with Alice's token: the outcome comes back (304 thanks to the ETag).
    before = feed_server.count("/gazette.xml")
    r = await client.post(
        f"/v1/admin/feeds/{feed_id}/poll", headers={"Authorization": f"Bearer {ALICE}"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["outcome"]["status"] in ("ok", "not_modified")
    assert r.json()["outcome"]["feed_id"] == feed_id
    assert feed_server.count("/gazette.xml") > before

    listed = (await client.get("/v1/admin/feeds")).json()["feeds"]
    assert [f["id"] for f in listed] == [feed_id]

    r = await client.delete(f"/v1/admin/feeds/{feed_id}")
    assert r.status_code == 200 and r.json() == {"deleted": feed_id}
    assert_error(await client.get(f"/v1/admin/feeds/{feed_id}"), 404)
    assert (await client.get("/v1/admin/feeds")).json() == {"feeds": []}

    audit = (await client.get("/v1/admin/audit")).json()["audit"]
    assert [(a["action"], a["actor"]) for a in audit] == [
        ("feed.delete", "admin"),
        ("feed.poll", "alice"),
        ("feed.update", "admin"),
        ("feed.update", "admin"),
        ("feed.update", "admin"),
        ("feed.create", "admin"),
    ]
    assert all(a["feed_id"] == feed_id for a in audit)
    assert audit[-2]["before"] == {"interval_seconds": 3600} and audit[-2]["after"] == {
        "interval_seconds": 2
    }
    assert audit[-1]["before"] is None and audit[-1]["after"]["url"].endswith("/gazette.xml")
    assert audit[0]["before"]["id"] == feed_id and audit[0]["after"] is None
    assert all(abs(ts(a["at"]) - time.time()) < 60 for a in audit)
    assert [a["action"] for a in (await client.get("/v1/admin/audit?limit=2")).json()["audit"]] == [
        "feed.delete",
        "feed.poll",
    ]


async def _next_poll_within(
    client: httpx.AsyncClient, feed_id: str, low: float, high: float
) -> bool:
    body = (await client.get(f"/v1/admin/feeds/{feed_id}")).json()
    at = body["health"]["next_poll_at"]
    return at is not None and time.time() + low - 1 <= ts(at) <= time.time() + high


async def test_failing_feed_stays_scheduled_and_visible(
    client: httpx.AsyncClient, feed_server: FeedServer
) -> None:
    feed_server.set("/broken.xml", b"oops", status=500)
    await client.post(
        "/v1/admin/feeds",
        json={"url": feed_server.url("/broken.xml"), "id": "broken", "interval_seconds": 0.5},
    )

    async def failing_twice() -> dict[str, Any] | None:
        body = (await client.get("/v1/admin/feeds/broken")).json()
        return body if body["health"]["consecutive_errors"] >= 2 else None

    body = await until(failing_twice)
    health = body["health"]
    assert health["status"] == "failing"
    assert health["last_result"] == "error" and health["last_http_status"] == 500
    assert "500" in health["last_error"]
    assert health["next_poll_at"] is not None  # backing off, never dropped

    # It recovers on its own; a success resets the error count but keeps the last error visible.
    feed_server.set("/broken.xml", rss([bridge_story()]))
    r = await client.post("/v1/admin/feeds/broken/poll")
    assert r.json()["outcome"]["status"] == "ok"
    health = r.json()["feed"]["health"]
    assert health["status"] == "ok" and health["consecutive_errors"] == 0
    assert "500" in health["last_error"]


async def test_changes_persist_across_a_restart(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/p.xml", rss([bridge_story()]))
    db = tmp_path / "lu.sqlite3"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with AdminService(db, admin_token=TOKEN) as svc:
        async with httpx.AsyncClient(base_url=svc.base_url, headers=headers) as c:
            r = await c.post(
                "/v1/admin/feeds",
                json={"url": feed_server.url("/p.xml"), "id": "p", "interval_seconds": 3600},
            )
            assert r.status_code == 201
            await c.patch("/v1/admin/feeds/p", json={"interval_seconds": 45, "adaptive": False})
    with AdminService(db, admin_token=TOKEN) as svc:
        async with httpx.AsyncClient(base_url=svc.base_url, headers=headers) as c:
            feed = (await c.get("/v1/admin/feeds/p")).json()
            assert (feed["interval_seconds"], feed["adaptive"]) == (45, False)
            # The restarted scheduler plans it again (a fixed feed: within its interval).
            await until(lambda: _next_poll_within(c, "p", 0, 46))
            audit = (await c.get("/v1/admin/audit")).json()["audit"]
            assert [a["action"] for a in audit] == ["feed.update", "feed.create"]


async def test_metrics_and_stats(client: httpx.AsyncClient, feed_server: FeedServer) -> None:
    feed_server.set("/m.xml", rss([bridge_story()]))
    await client.post(
        "/v1/admin/feeds",
        json={"url": feed_server.url("/m.xml"), "id": "m", "interval_seconds": 60},
    )
    await client.post("/v1/admin/feeds/m/poll")
    text = (await client.get("/metrics")).text
    for name in (
        'liveupdates_polls_total{result="ok"}',
        "liveupdates_poll_duration_seconds_bucket",
        "liveupdates_updates_published_total",
        "liveupdates_connected_clients",
        "liveupdates_messages_sent_total",
        "liveupdates_slow_clients_dropped_total",
        "liveupdates_publish_to_send_seconds_bucket",
    ):
        assert name in text, name
    stats = (await client.get("/v1/admin/stats")).json()
    assert stats["polls_total"]["ok"] >= 1
    assert stats["updates_published_total"] >= 1
    assert len(stats["updates_published_per_minute"]) == stats["window_minutes"]
    assert stats["updates_published_per_minute"][-1]["count"] >= 1
    assert isinstance(stats["connected_clients"], int)


def test_openapi_describes_exactly_the_routes() -> None:
    from liveupdates.push.service import admin_push_routes

    routes = admin_routes(Settings(admin_token="x"), None, None)  # type: ignore[arg-type]
    routes += admin_push_routes(Settings(admin_token="x"), None)  # type: ignore[arg-type]
    served: set[tuple[str, str]] = set()
    for route in routes:
        assert isinstance(route, Route)
        if "{rest:path}" in route.path:
            continue  # the JSON 404 for everything else
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))
    schema = openapi_schema()
    described = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "delete", "put"}
    }
    assert described == served
    # Every $ref resolves.
    import json

    text = json.dumps(schema)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node: Any = schema
        for key in ref.split("/"):
            node = node[key]


async def test_openapi_is_served_without_a_token(service: AdminService) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as c:
        r = await c.get("/v1/admin/openapi.json")
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.")


async def test_redis_mode_a_web_change_reaches_a_separate_worker(
    redis_url: str, redis_prefix: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    """Scale-out: the API runs in a web app without a poller, the poller is another "process"
    (its own store object and scheduler); the change reaches it through Redis alone."""
    import dataclasses

    from liveupdates.backends import open_url
    from liveupdates.hub import make_server
    from liveupdates.server import build_app
    from workers.main import running_poller

    feed_server.set("/r.xml", rss([bridge_story()]))
    settings = dataclasses.replace(
        Settings(),
        redis_url=redis_url,
        admin_token=TOKEN,
        hub_demo=False,
        poll_jitter=0.0,
        fetch_allow_networks=(ALLOW_LOOPBACK,),
    )
    web = open_url(redis_url, prefix=redis_prefix)
    worker = open_url(redis_url, prefix=redis_prefix)
    app = build_app(settings, web, self_url="http://127.0.0.1:1")
    sock = bound_socket()
    server = make_server(app, settings, host="127.0.0.1", port=0, log_level="warning")
    serving = await serve_until_started(server, sock, "the web app")
    try:
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with (
            running_poller(settings, worker),
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
            ) as c,
        ):
            r = await c.post(
                "/v1/admin/feeds",
                json={"url": feed_server.url("/r.xml"), "id": "r", "interval_seconds": 3600},
            )
            assert r.status_code == 201
            # The worker picks the new feed up from Redis, polls it, and plans the next poll.
            await until(lambda: _next_poll_within(c, "r", 60, 3600 + 5))
            assert feed_server.count("/r.xml") == 1

            await c.patch("/v1/admin/feeds/r", json={"interval_seconds": 2})
            started = time.monotonic()
            await until(lambda: _next_poll_within(c, "r", 0, 2.5), timeout=5)
            assert time.monotonic() - started < 1.5
            await until(lambda: _polled_twice(feed_server, "/r.xml"), timeout=5)

            # Poll now goes to the worker (the web process has no poller), which polls once
            # and plans the next poll from it; the answer carries the outcome.
            asked_at = utcnow_iso()
            r = await c.post("/v1/admin/feeds/r/poll")
            assert r.status_code == 200
            assert r.json()["outcome"]["status"] == "ok"
            assert r.json()["outcome"]["at"] >= asked_at  # this poll's, not an earlier one
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()
        await web.close()
        await worker.close()


async def _polled_twice(feed_server: FeedServer, path: str) -> bool:
    return feed_server.count(path) >= 2


async def test_a_feed_at_a_refused_address_is_a_422_and_nothing_is_fetched(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    loopback = "address 127.0.0.1 is loopback; see fetch.allow_networks"
    cases = {
        "http://10.0.0.1/rss": "address 10.0.0.1 is private; see fetch.allow_networks",
        "http://169.254.169.254/latest/meta-data/": (
            "address 169.254.169.254 is link-local; see fetch.allow_networks"
        ),
        feed_server.url("/a.xml"): loopback,
        f"http://127.0.0.1:{closed}/a.xml": loopback,  # a closed port says no more than that
        f"http://0x7f000001:{feed_server.port}/a.xml": loopback,
        f"http://2130706433:{feed_server.port}/a.xml": loopback,
        f"http://017700000001:{feed_server.port}/a.xml": loopback,
        f"http://127.1:{feed_server.port}/a.xml": loopback,
        "http://[::1]/rss": "address ::1 is loopback; see fetch.allow_networks",
        "http://[::ffff:127.0.0.1]/rss": (
            "address ::ffff:127.0.0.1 is loopback (IPv4-mapped form of 127.0.0.1); "
            "see fetch.allow_networks"
        ),
        "http://[2002:7f00:1::]/rss": (
            "address 2002:7f00:1:: is loopback (6to4 form of 127.0.0.1); see fetch.allow_networks"
        ),
    }
    db = tmp_path / "lu.sqlite3"
    with AdminService(db, admin_token=TOKEN, fetch_allow_networks=()) as svc:
        async with httpx.AsyncClient(base_url=svc.base_url, headers=svc.auth, timeout=10) as c:
            for url, message in cases.items():
                r = await c.post("/v1/admin/feeds", json={"url": url})
                assert assert_error(r, 422, "refused_address") == message, url
            # A name is judged by what it resolves to ("localhost" may give ::1 first).
            r = await c.post("/v1/admin/feeds", json={"url": f"http://localhost:{closed}/"})
            assert assert_error(r, 422, "refused_address").endswith(
                " is loopback; see fetch.allow_networks"
            )
            # The demo feed on the service's own address is always allowed; moving a feed to a
            # refused address is refused like adding one.
            r = await c.post(
                "/v1/admin/feeds", json={"url": "{self}/demo/feed.xml", "id": "d", "paused": True}
            )
            assert r.status_code == 201, r.text
            r = await c.patch("/v1/admin/feeds/d", json={"url": "http://10.0.0.1/rss"})
            assert assert_error(r, 422, "refused_address") == cases["http://10.0.0.1/rss"]
            feeds = (await c.get("/v1/admin/feeds")).json()["feeds"]
            assert [(f["id"], f["url"]) for f in feeds] == [("d", "{self}/demo/feed.xml")]
    assert feed_server.count("/a.xml") == 0


async def test_an_id_derived_from_an_ipv6_url_is_valid(tmp_path: Path) -> None:
    url = "http://[::1]:9/feeds/harbour.xml"
    db = tmp_path / "lu.sqlite3"
    with AdminService(db, admin_token=TOKEN, fetch_allow_networks=("::1/128",)) as svc:
        async with httpx.AsyncClient(base_url=svc.base_url, headers=svc.auth, timeout=10) as c:
            r = await c.post("/v1/admin/feeds", json={"url": url, "paused": True})
            assert r.status_code == 201, r.text
            feed_id = r.json()["id"]
            assert feed_id.startswith("ipv6-1-")
            assert r.headers["location"] == f"/v1/admin/feeds/{feed_id}"
            assert (await c.get(r.headers["location"])).json()["url"] == url


async def test_answers_validate_against_the_generated_admin_document(
    client: httpx.AsyncClient, feed_server: FeedServer
) -> None:
    """The admin document's schemas come from ops/models.py: real answers must match them."""
    import schemathesis

    document = schemathesis.openapi.from_dict(openapi_schema())
    feed_server.set("/v.xml", rss([bridge_story()]))

    def check(method: str, path: str, response: httpx.Response) -> None:
        document[path][method].validate_response(response)

    created = await client.post("/v1/admin/feeds", json={"url": feed_server.url("/v.xml")})
    check("POST", "/v1/admin/feeds", created)
    feed_id = created.json()["id"]
    check("GET", "/v1/admin/feeds", await client.get("/v1/admin/feeds"))
    check("GET", "/v1/admin/feeds/{feed_id}", await client.get(f"/v1/admin/feeds/{feed_id}"))
    check(
        "PATCH",
        "/v1/admin/feeds/{feed_id}",
        await client.patch(f"/v1/admin/feeds/{feed_id}", json={"title": "T", "paused": True}),
    )
    check(
        "POST",
        "/v1/admin/feeds/{feed_id}/poll",
        await client.post(f"/v1/admin/feeds/{feed_id}/poll"),
    )
    check("GET", "/v1/admin/audit", await client.get("/v1/admin/audit"))
    check("GET", "/v1/admin/stats", await client.get("/v1/admin/stats"))
    check("PATCH", "/v1/admin/feeds/{feed_id}", await client.patch("/v1/admin/feeds/x", json={}))
    check("DELETE", "/v1/admin/feeds/{feed_id}", await client.delete(f"/v1/admin/feeds/{feed_id}"))
