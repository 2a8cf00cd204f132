"""Device push end to end with the real Web Push provider: registered through the API with keys
made like a browser makes them, dispatched in-process, delivered to the strict local Web Push
server (which verifies the VAPID JWT and decrypts every payload)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from liveupdates.backends import open_url
from liveupdates.netguard.h1 import H1Client, Origin
from liveupdates.netguard.policy import AddressPolicy, AddressRefused
from liveupdates.push.service import run_dispatcher
from liveupdates.server import build_app
from tests.support.pushapp import publish, push_settings, story
from tests.support.pushservers import WebPushServer
from tests.support.waiting import until

P1 = "The harbour wall gave way at high tide on Sunday night."
P2 = "Water reached the fish market within minutes."
P3 = "The coastguard closed the quay to traffic."


@pytest.fixture
def webpush_server() -> Iterator[WebPushServer]:
    with WebPushServer() as server:
        yield server


async def test_v1_to_v2_every_follower_gets_one_decryptable_notification(
    tmp_path: Path, webpush_server: WebPushServer
) -> None:
    host = webpush_server.url.removeprefix("http://")
    settings = push_settings(push_webpush_hosts=(host,), push_register_per_minute=1000)
    backends = open_url(f"sqlite://{tmp_path / 'e2e.sqlite3'}")
    app = build_app(settings, backends, run_push=run_dispatcher, self_url="http://127.0.0.1:1")
    try:
        await publish(backends.store, story([P1]))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                key = (await client.get("/v1/push/vapid-public-key")).json()["publicKey"]
                subs = {}
                for n in range(20):
                    sub = webpush_server.subscribe(application_server_key=key)
                    r = await client.post(
                        "/v1/devices", json={"platform": "webpush", "subscription": sub.to_json()}
                    )
                    assert r.status_code == 201, r.text
                    device_id, secret = r.json()["device_id"], r.json()["secret"]
                    r = await client.put(
                        f"/v1/devices/{device_id}/subscriptions/story:harbour-wall",
                        headers={"Authorization": f"Bearer {secret}"},
                        json={"notify": "major" if n % 2 else "all"},
                    )
                    assert r.status_code == 200
                    subs[sub.id] = sub
                await publish(backends.store, story([P1, P2, P3]))
                await until(lambda: len(webpush_server.received) >= 20, timeout=30)
                # a one-word fix: only the "all" followers hear of it
                await publish(backends.store, story([P1, P2, P3.replace("quay", "harbour")]))
                await until(lambda: len(webpush_server.received) >= 30, timeout=30)
        assert not webpush_server.rejected
        by_sub: dict[str, list[int]] = {}
        for message in webpush_server.received:
            payload = message.payload
            by_sub.setdefault(message.subscription, []).append(payload["seq"])
            assert payload["title"] == "Harbour wall breached"
            assert payload["story"]["id"] == "harbour-wall"
            assert message.headers["urgency"] == "normal"
            if payload["seq"] == 2:
                assert payload["body"] == "2 paragraphs added"
            else:
                assert payload["body"] == "1 paragraph updated"
        assert set(by_sub) == set(subs)
        assert sorted(len(v) for v in by_sub.values()) == [1] * 10 + [2] * 10
        assert all(v[0] == 2 for v in by_sub.values())
    finally:
        await backends.close()


async def test_the_vapid_key_is_made_once_and_kept(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'keys.sqlite3'}"
    keys = []
    for _ in range(2):
        backends = open_url(url)
        app = build_app(push_settings(), backends, self_url="http://127.0.0.1:1")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/v1/push/vapid-public-key")
            keys.append(r.json()["publicKey"])
        await backends.close()
    assert keys[0] == keys[1]
    assert len(keys[0]) == 87  # 65 bytes, base64url without padding


async def test_push_test_command_reaches_the_device(
    tmp_path: Path, webpush_server: WebPushServer
) -> None:
    import subprocess
    import sys

    from tests.support.processes import ROOT, clean_env

    sub = webpush_server.subscribe()
    backends = open_url(f"sqlite://{tmp_path / 'liveupdates.sqlite3'}")
    try:
        await backends.devices.register(sub.device("dev-1"), "h", 1e12)
    finally:
        await backends.close()
    env = clean_env(
        LIVEUPDATES_DATA_DIR=str(tmp_path),
        LIVEUPDATES_PUSH_WEBPUSH_HOSTS=webpush_server.url.removeprefix("http://"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", "push", "test", "dev-1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "test notification sent to dev-1"
    [message] = webpush_server.received
    assert message.payload["title"] == "liveupdates test"
    assert not webpush_server.rejected


async def test_the_web_push_sender_checks_every_address_it_connects_to(
    webpush_server: WebPushServer,
) -> None:
    """The sender's HTTP client passes the address guard both for a name, which it resolves,
    and for an IP literal, which is checked as it is."""
    by_name = f"http://localhost:{webpush_server.port}/"
    by_address = f"http://127.0.0.1:{webpush_server.port}/"
    refusing = H1Client(AddressPolicy.allowing([]), limit=4)
    for url in (by_name, by_address):
        with pytest.raises(AddressRefused, match="loopback"):
            await refusing.post(Origin.of(url), "/push/nobody", (), b"x")
    assert webpush_server.attempts == []
    allowing = H1Client(AddressPolicy.allowing(["127.0.0.0/8", "::1/128"]), limit=4)
    try:
        for url in (by_name, by_address):
            answer = await allowing.post(Origin.of(url), "/push/nobody", (), b"x")
            assert answer.status == 404  # reached: the server knows no such subscription
    finally:
        await allowing.aclose()
    assert len(webpush_server.attempts) == 2
