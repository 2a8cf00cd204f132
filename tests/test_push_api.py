"""The public device-push API: registration, secrets, subscriptions, limits (docs/push.md)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveupdates.api.openapi import openapi_document
from liveupdates.backends import Backends, open_url
from liveupdates.push.api import MAX_BODY_BYTES
from liveupdates.server import build_app
from liveupdates.settings import Settings
from tests.support.pushapp import browser_keys, publish, push_settings, story, subscription


class Api:
    def __init__(self, client: httpx.AsyncClient, backends: Backends) -> None:
        self.client = client
        self.backends = backends

    async def register(self, body: dict[str, Any] | None = None) -> tuple[str, str]:
        r = await self.client.post(
            "/v1/devices", json=body or {"platform": "webpush", "subscription": subscription()}
        )
        assert r.status_code == 201, r.text
        return r.json()["device_id"], r.json()["secret"]

    async def put(
        self, device_id: str, secret: str, channel: str, body: Any = None
    ) -> httpx.Response:
        return await self.client.put(
            f"/v1/devices/{device_id}/subscriptions/{channel}",
            headers={"Authorization": f"Bearer {secret}"},
            json=body,
        )


async def open_api(tmp_path: Path, settings: Settings) -> AsyncIterator[Api]:
    backends = open_url(f"sqlite://{tmp_path / 'api.sqlite3'}")
    app = build_app(settings, backends, self_url="http://127.0.0.1:1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        api = Api(client, backends)
        await publish(backends.store, story(["First paragraph."]))
        yield api
    await backends.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async for a in open_api(tmp_path, push_settings(push_register_per_minute=100)):
        yield a


async def test_register_follow_list_unfollow_delete(api: Api) -> None:
    device_id, secret = await api.register()
    r = await api.put(device_id, secret, "story:harbour-wall")
    assert (r.status_code, r.json()) == (200, {"channel": "story:harbour-wall", "notify": "major"})
    r = await api.put(device_id, secret, "feed:gazette", {"notify": "all"})
    assert r.json() == {"channel": "feed:gazette", "notify": "all"}
    auth = {"Authorization": f"Bearer {secret}"}
    r = await api.client.get(f"/v1/devices/{device_id}/subscriptions", headers=auth)
    assert r.json() == {
        "subscriptions": [
            {"channel": "feed:gazette", "notify": "all"},
            {"channel": "story:harbour-wall", "notify": "major"},
        ]
    }
    r = await api.client.delete(f"/v1/devices/{device_id}/subscriptions/feed:gazette", headers=auth)
    assert r.status_code == 204
    r = await api.client.delete(f"/v1/devices/{device_id}", headers=auth)
    assert r.status_code == 204
    r = await api.client.get(f"/v1/devices/{device_id}/subscriptions", headers=auth)
    assert r.status_code == 404
    assert await api.backends.devices.channels() == []


async def test_reregistering_gives_the_same_id_and_a_new_secret(api: Api) -> None:
    sub = subscription(7)
    first_id, first_secret = await api.register({"platform": "webpush", "subscription": sub})
    again_id, again_secret = await api.register({"platform": "webpush", "subscription": sub})
    assert again_id == first_id
    assert again_secret != first_secret
    assert (await api.put(first_id, first_secret, "story:harbour-wall")).status_code == 401
    assert (await api.put(first_id, again_secret, "story:harbour-wall")).status_code == 200
    stored = await api.backends.devices.get(first_id)
    assert stored is not None and first_secret not in stored.secret_hash
    assert again_secret not in stored.secret_hash  # only a hash is kept


async def test_wrong_or_missing_secret_is_401_unknown_device_404(api: Api) -> None:
    device_id, _ = await api.register()
    assert (await api.put(device_id, "not-the-secret", "story:harbour-wall")).status_code == 401
    r = await api.client.put(f"/v1/devices/{device_id}/subscriptions/story:harbour-wall")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert (await api.put("no-such-device", "x", "story:harbour-wall")).status_code == 404
    assert await api.backends.devices.channels() == []


async def test_unknown_channel_404_bad_channel_or_notify_400(api: Api) -> None:
    device_id, secret = await api.register()
    r = await api.put(device_id, secret, "story:nobody-wrote-this")
    assert r.status_code == 404
    assert (await api.put(device_id, secret, "feed:no-such-feed")).status_code == 404
    r = await api.put(device_id, secret, "weather:today")
    assert (r.status_code, r.json()["error"]["field"]) == (400, "channel")
    r = await api.put(device_id, secret, "story:harbour-wall", {"notify": "everything"})
    assert (r.status_code, r.json()["error"]["field"]) == (400, "notify")
    assert await api.backends.devices.channels() == []


@pytest.mark.parametrize("channel", ["weather:today", "story:", "feed:" + "x" * 300, "story"])
async def test_unfollowing_a_malformed_channel_is_400_naming_it(api: Api, channel: str) -> None:
    device_id, secret = await api.register()
    assert (await api.put(device_id, secret, "story:harbour-wall")).status_code == 200
    r = await api.client.delete(
        f"/v1/devices/{device_id}/subscriptions/{channel}",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "bad_request",
        "field": "channel",
        "message": 'channel must be "story:<id>" or "feed:<id>"',
    }
    assert await api.backends.devices.channels() == ["story:harbour-wall"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "pager"}, "platform"),
        ({"platform": "webpush"}, "subscription"),
        (
            {"platform": "webpush", "subscription": {"keys": browser_keys()}},
            "subscription.endpoint",
        ),
        (
            {
                "platform": "webpush",
                "subscription": {"endpoint": "http://fcm.push.example/1", "keys": browser_keys()},
            },
            "subscription.endpoint",
        ),
        (
            {
                "platform": "webpush",
                "subscription": {"endpoint": "https://evil.example/1", "keys": browser_keys()},
            },
            "subscription.endpoint",
        ),
        (
            {
                "platform": "webpush",
                "subscription": {"endpoint": "https://10.0.0.1/1", "keys": browser_keys()},
            },
            "subscription.endpoint",
        ),
        (
            {"platform": "webpush", "subscription": {"endpoint": "https://a.push.example/1"}},
            "subscription.keys",
        ),
        (
            {
                "platform": "webpush",
                "subscription": {
                    "endpoint": "https://a.push.example/1",
                    "keys": {**browser_keys(), "p256dh": "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                },
            },
            "subscription.keys.p256dh",
        ),
        (
            {
                "platform": "webpush",
                "subscription": {
                    "endpoint": "https://a.push.example/1",
                    "keys": {**browser_keys(), "auth": "c2hvcnQ"},
                },
            },
            "subscription.keys.auth",
        ),
        (
            {  # a lone surrogate (JSON allows one) must not reach the store
                "platform": "webpush",
                "subscription": {
                    "endpoint": "https://a.push.example/\ud800",
                    "keys": browser_keys(),
                },
            },
            "subscription.endpoint",
        ),
        ({"platform": "apns", "token": "ab" * 32}, "platform"),  # APNs is not configured
        ({"platform": "fcm", "token": "abc"}, "platform"),  # nor FCM
        ([1, 2], "body"),
        ({"platform": "webpush", "\ud800": 1}, "body"),  # a lone surrogate as a key
    ],
)
async def test_bad_registrations_are_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    # json.dumps escapes lone surrogates as a hostile client would (httpx's json= cannot).
    headers = {"Content-Type": "application/json"}
    r = await api.client.post("/v1/devices", content=json.dumps(body), headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    assert await api.backends.devices.platform_counts() == {}


async def test_not_json_is_400(api: Api) -> None:
    r = await api.client.post("/v1/devices", content=b"{nope")
    assert (r.status_code, r.json()["error"]["field"]) == (400, "body")


async def test_an_oversized_body_is_refused_before_it_has_all_arrived(api: Api) -> None:
    # A chunked body (no Content-Length) that never ends: refused once past the limit, so a
    # client cannot make the server hold more than that.
    endless = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * (MAX_BODY_BYTES + 1)
        await endless.wait()
        yield b"never sent"

    r = await asyncio.wait_for(api.client.post("/v1/devices", content=body()), 30)
    endless.set()
    assert (r.status_code, r.json()["error"]["field"]) == (400, "body")
    assert await api.backends.devices.platform_counts() == {}


async def test_loopback_host_with_port_allows_http_there(api: Api) -> None:
    ok = {"endpoint": "http://127.0.0.1:9/push/1", "keys": browser_keys()}
    await api.register({"platform": "webpush", "subscription": ok})
    other_port = {"endpoint": "http://127.0.0.1:10/push/1", "keys": browser_keys()}
    r = await api.client.post(
        "/v1/devices", json={"platform": "webpush", "subscription": other_port}
    )
    assert r.status_code == 400


def apns_and_fcm_settings() -> Settings:
    """APNs and FCM configured (their key files are never read by the API)."""
    return push_settings(
        push_apns_key_file="/k.p8",
        push_apns_key_id="KEY",
        push_apns_team_id="TEAM",
        push_apns_topic="org.example.news",
        push_fcm_credentials_file="/sa.json",
    )


async def test_configured_providers_accept_their_tokens(tmp_path: Path) -> None:
    settings = apns_and_fcm_settings()
    async for api in open_api(tmp_path, settings):
        apns_id, _ = await api.register(
            {"platform": "apns", "token": "AB" * 32, "environment": "sandbox"}
        )
        fcm_id, _ = await api.register({"platform": "fcm", "token": "fcm-token:abc_123"})
        record = await api.backends.devices.get(apns_id)
        assert record is not None
        assert (record.device.address, record.device.environment) == ("ab" * 32, "sandbox")
        r = await api.client.post(
            "/v1/devices", json={"platform": "apns", "token": "zz", "environment": "production"}
        )
        assert r.json()["error"]["field"] == "token"
        r = await api.client.post(
            "/v1/devices", json={"platform": "apns", "token": "ab" * 32, "environment": "beta"}
        )
        assert r.json()["error"]["field"] == "environment"
        assert await api.backends.devices.platform_counts() == {"apns": 1, "fcm": 1}
        assert fcm_id != apns_id


async def test_registration_rate_is_limited_per_address(tmp_path: Path) -> None:
    async for api in open_api(tmp_path, push_settings(push_register_per_minute=3)):
        for n in range(3):
            await api.register({"platform": "webpush", "subscription": subscription(n)})
        r = await api.client.post(
            "/v1/devices", json={"platform": "webpush", "subscription": subscription(9)}
        )
        assert r.status_code == 429
        assert r.headers["retry-after"] == "20"  # one registration back every 60 / 3 s
        assert r.json()["error"] == {
            "code": "rate_limited",
            "message": "too many registrations from your address; retry in 20 s",
        }
        assert await api.backends.devices.platform_counts() == {"webpush": 3}


async def test_subscriptions_per_device_are_bounded(tmp_path: Path) -> None:
    async for api in open_api(tmp_path, push_settings(push_max_subscriptions=1)):
        other = replace(
            story(["Other."], title="Other"), id="other-story", url="https://g.example/o"
        )
        await publish(api.backends.store, other)
        device_id, secret = await api.register()
        assert (await api.put(device_id, secret, "story:harbour-wall")).status_code == 200
        r = await api.put(device_id, secret, "story:other-story")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "too_many_subscriptions"
        # Changing how a followed channel notifies is fine at the limit.
        r = await api.put(device_id, secret, "story:harbour-wall", {"notify": "all"})
        assert r.status_code == 200


async def test_first_follower_starts_at_the_logs_end(api: Api) -> None:
    device_id, secret = await api.register()
    await api.put(device_id, secret, "story:harbour-wall")
    cursor = await api.backends.devices.get_cursor("story:harbour-wall")
    bounds = await api.backends.store.log_bounds("story:harbour-wall")
    assert cursor is not None and (cursor.epoch, cursor.seq) == (bounds.epoch, bounds.last)


async def test_a_channel_followed_again_after_a_pause_starts_from_now(api: Api) -> None:
    device_id, secret = await api.register()
    await api.put(device_id, secret, "story:harbour-wall")
    auth = {"Authorization": f"Bearer {secret}"}
    await api.client.delete(
        f"/v1/devices/{device_id}/subscriptions/story:harbour-wall", headers=auth
    )
    # Nobody follows it while it changes.
    await publish(api.backends.store, story(["First paragraph.", "Second."]))
    await api.put(device_id, secret, "story:harbour-wall")
    cursor = await api.backends.devices.get_cursor("story:harbour-wall")
    assert cursor is not None and cursor.seq == 2


async def test_the_document_states_the_token_rules_the_route_applies(tmp_path: Path) -> None:
    """/v1/openapi.json's registration models are what the route validates with: a token the
    documented pattern refuses is a 400 naming `token`, one it allows is registered."""
    schemas = openapi_document()["components"]["schemas"]
    settings = apns_and_fcm_settings()
    cases = [
        ("apns", "ApnsRegistration", "ab" * 16),
        ("apns", "ApnsRegistration", "ab" * 15 + "a"),  # odd length: not whole bytes
        ("apns", "ApnsRegistration", "ab" * 8),  # 16 digits: too short for a device token
        ("apns", "ApnsRegistration", "ab" * 101),
        ("fcm", "FcmRegistration", "fcm-token:APA91b_x"),
        ("fcm", "FcmRegistration", "fcm token"),
        ("fcm", "FcmRegistration", "é"),
    ]
    outcomes = set()
    async for api in open_api(tmp_path, settings):
        for platform, model, token in cases:
            pattern = schemas[model]["properties"]["token"]["pattern"]
            documented = re.search(pattern, token) is not None
            outcomes.add(documented)
            r = await api.client.post("/v1/devices", json={"platform": platform, "token": token})
            if documented:
                assert r.status_code == 201, (token, r.text)
            else:
                assert (r.status_code, r.json()["error"]["field"]) == (400, "token"), token
    assert outcomes == {True, False}
