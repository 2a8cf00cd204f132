"""The push providers against strict local push services (tests/support/pushservers.py).

Every server refuses what the real service would refuse and records it in `rejected`; every test
ends with that list empty unless it is about such a refusal.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from liveupdates.push.model import Device, Notification
from liveupdates.push.providers import build_providers
from liveupdates.push.providers.apns import ApnsProvider, collapse_id, load_p8
from liveupdates.push.providers.fcm import FcmProvider, ServiceAccount
from liveupdates.push.providers.vapid import VapidKey, VapidSigner, origin
from liveupdates.push.providers.webpush import (
    MAX_PLAINTEXT,
    WebPushProvider,
    parse_webpush_hosts,
    topic,
    webpush_host_allowed,
)
from liveupdates.push.registration import subscription_keys
from liveupdates.settings import Settings
from tests.support.feedserver import ALLOW_LOOPBACK
from tests.support.pushservers import (
    ApnsCredentials,
    ApnsServer,
    FcmServer,
    WebPushServer,
    make_apns_key,
)

SUBJECT = "mailto:ops@example.com"


def notification(**changes: object) -> Notification:
    fields: dict[str, object] = {
        "channel": "story:s-42",
        "seq": 7,
        "epoch": "e1",
        "kind": "updated",
        "story_id": "s-42",
        "story_title": "Storm reaches the coast",
        "story_url": "https://news.example.com/storm",
        "title": "Storm reaches the coast",
        "body": "2 new paragraphs: Winds of 120 km/h ...",
        "updates": 1,
        "urgency": "high",
        "ttl": 3600,
    }
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


# -- Web Push -------------------------------------------------------------------------------------


@pytest.fixture
def webpush_server() -> Iterator[WebPushServer]:
    with WebPushServer() as server:
        yield server


@pytest.fixture
def vapid_key() -> VapidKey:
    return VapidKey.generate()


def webpush_provider(server: WebPushServer, key: VapidKey, **options: object) -> WebPushProvider:
    options.setdefault("allow_networks", [ALLOW_LOOPBACK])
    return WebPushProvider(key, SUBJECT, hosts=[f"127.0.0.1:{server.port}"], **options)  # type: ignore[arg-type]


async def test_webpush_sends_an_encrypted_payload_the_browser_decrypts(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    subscription = webpush_server.subscribe(application_server_key=vapid_key.public_key_b64url())
    provider = webpush_provider(webpush_server, vapid_key)
    try:
        note = notification()
        result = await provider.send(subscription.device(), note)
    finally:
        await provider.aclose()
    assert result.status == "sent", result
    assert webpush_server.rejected == []
    [message] = webpush_server.messages_for(subscription)
    assert message.payload == note.payload()
    assert message.headers["ttl"] == "3600"
    assert message.headers["urgency"] == "high"
    assert message.headers["topic"] == topic("s-42")
    assert message.headers["content-encoding"] == "aes128gcm"
    assert message.claims["aud"] == webpush_server.url
    assert message.claims["sub"] == SUBJECT


async def test_webpush_topic_fits_rfc8030_for_any_story_id() -> None:
    for story_id in ("s-42", "https://news.example.com/a/very/long/story?id=ü&x=" * 3, ""):
        value = topic(story_id)
        assert len(value) == 32
        assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert topic("a") == topic("a") != topic("b")


async def test_webpush_normal_urgency_and_jwt_reused_per_origin(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    first, second = webpush_server.subscribe(), webpush_server.subscribe()
    provider = webpush_provider(webpush_server, vapid_key)
    try:
        for sub in (first, second, first):
            result = await provider.send(sub.device(), notification(urgency="normal", seq=3))
            assert result.status == "sent", result
    finally:
        await provider.aclose()
    assert webpush_server.rejected == []
    assert [m.headers["urgency"] for m in webpush_server.received] == ["normal"] * 3
    assert len({m.jwt for m in webpush_server.received}) == 1  # one JWT for the origin


def test_vapid_jwt_is_renewed_before_it_expires() -> None:
    now = [1_000_000.0]
    signer = VapidSigner(
        VapidKey.generate(), SUBJECT, lifetime=600, renew_before=60, clock=lambda: now[0]
    )
    first = signer.token("https://push.example.com/abc")
    assert signer.token("https://push.example.com/other") == first  # same origin
    assert signer.token("https://other.example.com/abc") != first  # another origin
    now[0] += 530
    assert signer.token("https://push.example.com/abc") == first  # 70 s left: still good
    now[0] += 20
    assert signer.token("https://push.example.com/abc") != first  # 50 s left: renewed


def test_vapid_origin_and_key_formats() -> None:
    assert origin("https://fcm.googleapis.com/fcm/send/x") == "https://fcm.googleapis.com"
    assert origin("https://h.example:443/x") == "https://h.example"
    assert origin("http://127.0.0.1:9000/push/1") == "http://127.0.0.1:9000"
    key = VapidKey.generate()
    again = VapidKey.from_pem(key.private_pem())
    assert again.public_key_b64url() == key.public_key_b64url()
    assert len(key.public_key_b64url()) == 87 and "=" not in key.public_key_b64url()
    raw = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    import base64

    text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert VapidKey.parse(text).public_key_b64url() == key.public_key_b64url()
    assert VapidKey.parse(key.private_pem()).public_key_b64url() == key.public_key_b64url()
    for bad in ("", "not a key", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"):
        with pytest.raises(ValueError):
            VapidKey.parse(bad)
    with pytest.raises(ValueError):
        VapidSigner(key, "ops@example.com")


async def test_webpush_server_refuses_an_expired_vapid_jwt(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    """The server checks exp: a signer whose clock is two days behind signs a stale JWT."""
    subscription = webpush_server.subscribe()
    provider = webpush_provider(webpush_server, vapid_key)
    import time

    provider.signer = VapidSigner(vapid_key, SUBJECT, clock=lambda: time.time() - 2 * 86400)
    try:
        result = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "failed"
    assert "403" in result.detail
    assert len(webpush_server.rejected) == 1 and "expired" in webpush_server.rejected[0].lower()


async def test_webpush_server_refuses_another_vapid_key(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    subscription = webpush_server.subscribe(application_server_key=vapid_key.public_key_b64url())
    provider = webpush_provider(webpush_server, VapidKey.generate())
    try:
        result = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "failed"
    assert webpush_server.received == []
    assert len(webpush_server.rejected) == 1


@pytest.mark.parametrize("status", [404, 410])
async def test_webpush_gone(
    webpush_server: WebPushServer, vapid_key: VapidKey, status: int
) -> None:
    subscription = webpush_server.subscribe()
    webpush_server.answer(subscription, status)
    provider = webpush_provider(webpush_server, vapid_key)
    try:
        result = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "gone", result
    assert webpush_server.rejected == []


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_webpush_retry_with_retry_after(
    webpush_server: WebPushServer, vapid_key: VapidKey, status: int
) -> None:
    subscription = webpush_server.subscribe()
    webpush_server.answer(subscription, status, retry_after=30, times=1)
    provider = webpush_provider(webpush_server, vapid_key)
    try:
        first = await provider.send(subscription.device(), notification())
        second = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert first.status == "retry" and first.retry_after == 30.0, first
    assert second.status == "sent"
    assert webpush_server.attempts == [(subscription.id, status), (subscription.id, 201)]


async def test_webpush_retry_without_retry_after(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    subscription = webpush_server.subscribe()
    webpush_server.answer(subscription, 500)
    provider = webpush_provider(webpush_server, vapid_key)
    try:
        result = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "retry" and result.retry_after is None


async def test_webpush_too_large(webpush_server: WebPushServer, vapid_key: VapidKey) -> None:
    subscription = webpush_server.subscribe()
    provider = webpush_provider(webpush_server, vapid_key)
    try:
        # the service says 413
        webpush_server.answer(subscription, 413, times=1)
        told = await provider.send(subscription.device(), notification())
        # a body that cannot fit is not even sent
        big = await provider.send(subscription.device(), notification(body="x" * MAX_PLAINTEXT))
        # just under the limit still goes out (and the server decrypts it)
        size = len(json.dumps(notification(body="").payload(), separators=(",", ":")))
        fits = await provider.send(
            subscription.device(), notification(body="y" * (MAX_PLAINTEXT - size))
        )
    finally:
        await provider.aclose()
    assert told.status == "too_large"
    assert big.status == "too_large"
    assert fits.status == "sent", fits
    assert webpush_server.rejected == []
    assert len(webpush_server.received) == 1


async def test_webpush_host_not_allowed_is_never_contacted(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    subscription = webpush_server.subscribe()
    provider = WebPushProvider(
        vapid_key, SUBJECT, hosts=["fcm.googleapis.com"], allow_networks=[ALLOW_LOOPBACK]
    )
    try:
        result = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "failed" and "push.webpush_hosts" in result.detail
    assert webpush_server.attempts == []


async def test_webpush_refused_address_via_the_guard(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    """An allow-listed host that resolves to a loopback address the guard was not told to allow."""
    subscription = webpush_server.subscribe()
    provider = webpush_provider(webpush_server, vapid_key, allow_networks=[])
    try:
        result = await provider.send(subscription.device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "failed"
    assert "loopback" in result.detail
    assert webpush_server.attempts == []


async def test_webpush_bad_subscription_keys_fail_without_a_request(
    webpush_server: WebPushServer, vapid_key: VapidKey
) -> None:
    subscription = webpush_server.subscribe()
    provider = webpush_provider(webpush_server, vapid_key)
    bad = [
        {"p256dh": "AAAA", "auth": subscription.auth},
        {"p256dh": subscription.p256dh, "auth": "AAAA"},
    ]
    try:
        for keys in bad:
            device = Device(id="d", platform="webpush", address=subscription.endpoint, keys=keys)
            result = await provider.send(device, notification())
            assert result.status == "failed"
    finally:
        await provider.aclose()
    assert webpush_server.attempts == []


def test_subscription_keys_are_checked_like_a_browser_makes_them() -> None:
    with WebPushServer() as server:
        subscription = server.subscribe()
    point, auth = subscription_keys(subscription.keys())
    assert len(point) == 65 and len(auth) == 16
    compressed = subscription.private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    not_on_curve = "BA" + "A" * 85
    bad = {
        "p256dh": [
            "",
            "AAAA",
            "!!!",
            not_on_curve,
            base64.urlsafe_b64encode(compressed).decode(),
        ],
        "auth": ["", "AAAA", base64.urlsafe_b64encode(b"x" * 17).decode()],
    }
    for name, values in bad.items():
        for value in values:
            keys = subscription.keys() | {name: value}
            with pytest.raises(ValueError, match=rf"keys\.{name}"):
                subscription_keys(keys)
    with pytest.raises(ValueError, match=r"keys\.p256dh"):
        subscription_keys({"auth": subscription.auth})
    # padded base64url (some clients add it) reads the same
    padded = {"p256dh": subscription.p256dh + "=", "auth": subscription.auth + "=="}
    assert subscription_keys(padded) == (point, auth)


def test_webpush_host_allow_list() -> None:
    hosts = parse_webpush_hosts(
        "fcm.googleapis.com, *.push.apple.com,*.notify.windows.com,127.0.0.1:9000"
    )
    allowed = [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com:443/fcm/send/abc",
        "https://web.push.apple.com/QG9",
        "https://wns2-par02p.notify.windows.com/w/?token=x",
        "http://127.0.0.1:9000/push/1",
        "https://127.0.0.1:9000/push/1",
    ]
    refused = [
        "http://fcm.googleapis.com/fcm/send/abc",  # not https
        "https://fcm.googleapis.com:8443/x",  # another port
        "https://push.apple.com/x",  # the wildcard needs a label before it
        "https://evilpush.apple.com.example.org/x",
        "https://notfcm.googleapis.com/x",
        "https://user@fcm.googleapis.com/x",  # user info
        "http://127.0.0.1:9001/push/1",  # another port
        "http://127.0.0.1/push/1",
        "ftp://fcm.googleapis.com/x",
        "https://fcm.googleapis.com:99999/x",
        "not a url",
        "",
    ]
    for url in allowed:
        assert webpush_host_allowed(url, hosts), url
    for url in refused:
        assert not webpush_host_allowed(url, hosts), url
    # plain http only for loopback entries
    assert not webpush_host_allowed("http://push.example.com:8080/x", ["push.example.com:8080"])
    assert webpush_host_allowed("https://push.example.com:8080/x", ["push.example.com:8080"])
    for bad in ("https://fcm.googleapis.com", "*", "*.", "a/b", "h:notaport"):
        with pytest.raises(ValueError):
            parse_webpush_hosts([bad])


# -- APNs -----------------------------------------------------------------------------------------


@pytest.fixture
def apns_credentials(tmp_path: Path) -> ApnsCredentials:
    return make_apns_key(tmp_path)


@pytest.fixture
def apns_server(apns_credentials: ApnsCredentials) -> Iterator[ApnsServer]:
    with ApnsServer(apns_credentials) as server:
        yield server


def apns_provider(server: ApnsServer, **options: Any) -> ApnsProvider:
    credentials = server.credentials
    options.setdefault("url", server.url)
    options.setdefault("sandbox_url", server.url)
    options.setdefault("verify", server.ssl_context)
    options.setdefault("allow_networks", [ALLOW_LOOPBACK])
    return ApnsProvider(
        key_file=credentials.key_file,
        key_id=credentials.key_id,
        team_id=credentials.team_id,
        topic=credentials.topic,
        **options,
    )


def apns_device(token: str = "a1b2c3" * 10 + "d4e5", environment: str = "production") -> Device:
    return Device(id="ios-1", platform="apns", address=token, environment=environment)


async def test_apns_sends_over_http2_with_the_headers(apns_server: ApnsServer) -> None:
    provider = apns_provider(apns_server)
    device = apns_device()
    before = int(time.time())
    try:
        high = await provider.send(device, notification(urgency="high", ttl=600))
        normal = await provider.send(device, notification(urgency="normal", seq=8))
    finally:
        await provider.aclose()
    assert (high.status, normal.status) == ("sent", "sent"), (high, normal)
    assert apns_server.rejected == []
    first, second = apns_server.received
    assert first.http_version == "2"
    assert first.token == device.address
    assert first.headers["apns-topic"] == apns_server.credentials.topic
    assert first.headers["apns-push-type"] == "alert"
    assert first.headers["apns-collapse-id"] == "s-42"
    assert first.headers["apns-priority"] == "10"
    assert second.headers["apns-priority"] == "5"
    assert before + 600 <= int(first.headers["apns-expiration"]) <= int(time.time()) + 600
    assert first.payload["aps"]["alert"] == {
        "title": "Storm reaches the coast",
        "body": "2 new paragraphs: Winds of 120 km/h ...",
    }
    for key, value in notification().payload().items():
        assert first.payload[key] == value
    assert len(apns_server.jwts) == 1  # the provider token is reused


async def test_apns_long_collapse_key_is_hashed_to_fit() -> None:
    assert collapse_id("s-42") == "s-42"
    long = "https://news.example.com/" + "x" * 80
    assert len(collapse_id(long).encode()) == 64
    assert collapse_id(long) == collapse_id(long) != collapse_id(long + "y")


async def test_apns_provider_token_is_renewed_before_the_hour(apns_server: ApnsServer) -> None:
    offset = [-3100.0]
    provider = apns_provider(apns_server, clock=lambda: time.time() + offset[0])
    try:
        assert (await provider.send(apns_device(), notification())).status == "sent"
        assert (await provider.send(apns_device(), notification())).status == "sent"
        offset[0] = 0.0  # 51 minutes later
        assert (await provider.send(apns_device(), notification())).status == "sent"
    finally:
        await provider.aclose()
    assert apns_server.rejected == []
    assert len(apns_server.jwts) == 2
    assert [m.jwt for m in apns_server.received][:2] == [apns_server.jwts[0]] * 2


async def test_apns_expired_provider_token_is_renewed_and_retried(apns_server: ApnsServer) -> None:
    offset = [-4000.0]
    provider = apns_provider(apns_server, clock=lambda: time.time() + offset[0], token_lifetime=1e9)
    try:
        first = await provider.send(apns_device(), notification())
        offset[0] = 0.0
        second = await provider.send(apns_device(), notification())
    finally:
        await provider.aclose()
    assert first.status == "retry" and "ExpiredProviderToken" in first.detail
    assert second.status == "sent"
    assert apns_server.rejected == [f"{apns_device().address}: 403 ExpiredProviderToken"]


async def test_apns_sandbox_devices_go_to_the_sandbox_url(
    apns_server: ApnsServer, apns_credentials: ApnsCredentials
) -> None:
    with ApnsServer(apns_credentials) as sandbox:
        provider = apns_provider(
            apns_server, sandbox_url=sandbox.url, verify=trust_both(apns_server, sandbox)
        )
        try:
            assert (
                await provider.send(apns_device(environment="sandbox"), notification())
            ).status == "sent"
            assert (await provider.send(apns_device(), notification())).status == "sent"
        finally:
            await provider.aclose()
        assert len(sandbox.received) == 1 and len(apns_server.received) == 1


def trust_both(*servers: ApnsServer) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for server in servers:
        server.ca.configure_trust(context)
    return context


@pytest.mark.parametrize(("status", "reason"), [(410, "Unregistered"), (400, "BadDeviceToken")])
async def test_apns_gone(apns_server: ApnsServer, status: int, reason: str) -> None:
    device = apns_device()
    apns_server.answer(device.address, status, reason=reason)
    provider = apns_provider(apns_server)
    try:
        result = await provider.send(device, notification())
    finally:
        await provider.aclose()
    assert result.status == "gone" and reason in result.detail


async def test_apns_bad_token_shape_is_gone_too(apns_server: ApnsServer) -> None:
    provider = apns_provider(apns_server)
    try:
        result = await provider.send(apns_device(token="not/hex?"), notification())
    finally:
        await provider.aclose()
    assert result.status == "gone" and "BadDeviceToken" in result.detail
    assert apns_server.attempts == []  # not sent: it would be part of the request's path


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "TooManyRequests"), (503, "ServiceUnavailable")]
)
async def test_apns_retry_with_retry_after(
    apns_server: ApnsServer, status: int, reason: str
) -> None:
    device = apns_device()
    apns_server.answer(device.address, status, reason=reason, retry_after=12, times=1)
    provider = apns_provider(apns_server)
    try:
        first = await provider.send(device, notification())
        second = await provider.send(device, notification())
    finally:
        await provider.aclose()
    assert first.status == "retry" and first.retry_after == 12.0, first
    assert second.status == "sent"
    assert apns_server.rejected == []


async def test_apns_too_large(apns_server: ApnsServer) -> None:
    device = apns_device()
    provider = apns_provider(apns_server)
    try:
        local = await provider.send(device, notification(body="x" * 4000))
        apns_server.answer(device.address, 413, reason="PayloadTooLarge", times=1)
        told = await provider.send(device, notification())
    finally:
        await provider.aclose()
    assert local.status == "too_large" and told.status == "too_large"
    assert apns_server.attempts == [(device.address, 413)]


def test_apns_key_file_mistakes_are_one_clear_line(tmp_path: Path) -> None:
    not_a_key = tmp_path / "AuthKey.p8"
    not_a_key.write_text("hello")
    rsa_key = tmp_path / "rsa.p8"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for path, words in (
        (tmp_path / "missing.p8", "cannot read"),
        (not_a_key, ".p8"),
        (rsa_key, "P-256"),
    ):
        with pytest.raises(ValueError, match=words):
            load_p8(path)
    with pytest.raises(ValueError, match="TEAM_ID"):
        ApnsProvider(key_file=not_a_key, key_id="K", team_id="", topic="t")


# -- FCM ------------------------------------------------------------------------------------------


@pytest.fixture
def fcm_server() -> Iterator[FcmServer]:
    with FcmServer() as server:
        yield server


def fcm_provider(server: FcmServer, directory: Path, **options: Any) -> FcmProvider:
    account = server.make_credentials(directory)
    options.setdefault("allow_networks", [ALLOW_LOOPBACK])
    return FcmProvider(credentials_file=account.credentials_file, url=server.url, **options)


def fcm_device(token: str = "fcm-token-1:APA91b" + "x" * 40) -> Device:
    return Device(id="android-1", platform="fcm", address=token)


async def test_fcm_sends_the_v1_message(fcm_server: FcmServer, tmp_path: Path) -> None:
    provider = fcm_provider(fcm_server, tmp_path)
    note = notification(urgency="high", ttl=900)
    try:
        results = [await provider.send(fcm_device(), note) for _ in range(3)]
    finally:
        await provider.aclose()
    assert [r.status for r in results] == ["sent"] * 3, results
    assert fcm_server.rejected == []
    assert fcm_server.grants == 1  # one access token for all three
    message = fcm_server.received[0].message
    assert fcm_server.received[0].project == "liveupdates-test"
    assert message["token"] == fcm_device().address
    assert message["notification"] == {"title": note.title, "body": note.body}
    assert message["android"]["collapse_key"] == "s-42"
    assert message["android"]["notification"]["tag"] == "s-42"
    assert message["android"]["priority"] == "HIGH"
    assert message["android"]["ttl"] == "900s"
    data = message["data"]
    assert data["channel"] == "story:s-42" and data["seq"] == "7" and data["title"] == note.title
    assert json.loads(data["story"]) == note.payload()["story"]


async def test_fcm_access_token_is_renewed(fcm_server: FcmServer, tmp_path: Path) -> None:
    # expiring soon: the provider asks again before using it
    fcm_server.token_lifetime = 200
    provider = fcm_provider(fcm_server, tmp_path)
    try:
        assert (await provider.send(fcm_device(), notification())).status == "sent"
        assert (await provider.send(fcm_device(), notification())).status == "sent"
        assert fcm_server.grants == 2
        fcm_server.token_lifetime = 3600
        assert (await provider.send(fcm_device(), notification())).status == "sent"
        assert (await provider.send(fcm_device(), notification())).status == "sent"
        assert fcm_server.grants == 3
        # a token the server no longer takes: 401, then a new one
        fcm_server.expire_tokens()
        refused = await provider.send(fcm_device(), notification())
        again = await provider.send(fcm_device(), notification())
    finally:
        await provider.aclose()
    assert refused.status == "retry" and again.status == "sent"
    assert fcm_server.grants == 4
    assert len(fcm_server.rejected) == 1 and "expired" in fcm_server.rejected[0]


async def test_fcm_concurrent_sends_share_one_token_fetch(
    fcm_server: FcmServer, tmp_path: Path
) -> None:
    provider = fcm_provider(fcm_server, tmp_path)
    try:
        results = await asyncio.gather(
            *(provider.send(fcm_device(f"token-{i}"), notification()) for i in range(10))
        )
    finally:
        await provider.aclose()
    assert {r.status for r in results} == {"sent"}
    assert fcm_server.grants == 1


@pytest.mark.parametrize(("status", "code"), [(404, "UNREGISTERED"), (400, "UNREGISTERED")])
async def test_fcm_gone(fcm_server: FcmServer, tmp_path: Path, status: int, code: str) -> None:
    fcm_server.answer(fcm_device().address, status, reason=code)
    provider = fcm_provider(fcm_server, tmp_path)
    try:
        result = await provider.send(fcm_device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "gone" and code in result.detail


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_fcm_retry_with_retry_after(
    fcm_server: FcmServer, tmp_path: Path, status: int
) -> None:
    fcm_server.answer(fcm_device().address, status, retry_after=7, times=1)
    provider = fcm_provider(fcm_server, tmp_path)
    try:
        first = await provider.send(fcm_device(), notification())
        second = await provider.send(fcm_device(), notification())
    finally:
        await provider.aclose()
    assert first.status == "retry" and first.retry_after == 7.0, first
    assert second.status == "sent"


async def test_fcm_too_large(fcm_server: FcmServer, tmp_path: Path) -> None:
    provider = fcm_provider(fcm_server, tmp_path)
    try:
        local = await provider.send(fcm_device(), notification(body="x" * 3000))
        fcm_server.answer(fcm_device().address, 413, reason="INVALID_ARGUMENT", times=1)
        told = await provider.send(fcm_device(), notification())
        fcm_server.answer(fcm_device().address, 400, reason="INVALID_ARGUMENT", times=1)
        other = await provider.send(fcm_device(), notification())
    finally:
        await provider.aclose()
    assert local.status == "too_large" and told.status == "too_large"
    assert other.status == "failed"  # a 400 that is not about size is not retried
    assert fcm_server.rejected == []


async def test_fcm_token_endpoint_refusal_fails_the_send(
    fcm_server: FcmServer, tmp_path: Path
) -> None:
    account = fcm_server.make_credentials(tmp_path)
    del fcm_server.accounts[account.client_email]  # the server no longer knows the key
    provider = FcmProvider(
        credentials_file=account.credentials_file,
        url=fcm_server.url,
        allow_networks=[ALLOW_LOOPBACK],
    )
    try:
        result = await provider.send(fcm_device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "failed" and "invalid_grant" in result.detail
    assert fcm_server.received == []


async def test_fcm_token_uri_at_an_address_not_allowed_is_refused(
    fcm_server: FcmServer, tmp_path: Path
) -> None:
    """The token_uri comes from the credentials file, not from the settings: the address guard
    refuses it when it points where ops did not allow (here a loopback address, as a private one
    would be), and nothing is sent to it or to FCM."""
    account = fcm_server.make_credentials(tmp_path)
    info = json.loads(account.credentials_file.read_text())
    info["token_uri"] = f"http://127.0.0.2:{fcm_server.port}/token"
    account.credentials_file.write_text(json.dumps(info))
    provider = FcmProvider(
        credentials_file=account.credentials_file,
        url=fcm_server.url,
        allow_networks=[ALLOW_LOOPBACK],  # 127.0.0.1 only
    )
    try:
        result = await provider.send(fcm_device(), notification())
    finally:
        await provider.aclose()
    assert result.status == "failed", result
    assert "address 127.0.0.2 is loopback; see fetch.allow_networks" in result.detail
    assert fcm_server.grants == 0 and fcm_server.received == []


async def test_fcm_and_apns_urls_pass_the_address_guard(
    fcm_server: FcmServer, apns_server: ApnsServer, tmp_path: Path
) -> None:
    """Without the loopback network allowed, the local services are refused before any request."""
    fcm = fcm_provider(fcm_server, tmp_path, allow_networks=[])
    apns = apns_provider(apns_server, allow_networks=[])
    try:
        results = [
            await fcm.send(fcm_device(), notification()),
            await apns.send(apns_device(), notification()),
        ]
    finally:
        await fcm.aclose()
        await apns.aclose()
    assert [r.status for r in results] == ["failed", "failed"], results
    assert all("address 127.0.0.1 is loopback" in r.detail for r in results), results
    assert fcm_server.grants == 0 and fcm_server.received == [] and apns_server.received == []


async def test_build_providers_allows_the_urls_ops_configured_not_the_token_uri(
    fcm_server: FcmServer, tmp_path: Path
) -> None:
    """The settings' own loopback URLs (tests' local services) pass the guard as push.webpush_hosts'
    do; a token_uri the credentials file points elsewhere on loopback does not."""
    good = fcm_server.make_credentials(tmp_path)
    bad = fcm_server.make_credentials(tmp_path)
    info = json.loads(bad.credentials_file.read_text())
    info["token_uri"] = f"http://127.0.0.2:{fcm_server.port}/token"
    bad.credentials_file.write_text(json.dumps(info))
    key = VapidKey.generate()
    results = []
    for account in (good, bad):
        settings = Settings(
            push_fcm_credentials_file=str(account.credentials_file), push_fcm_url=fcm_server.url
        )
        provider = build_providers(settings, key)["fcm"]
        try:
            results.append(await provider.send(fcm_device(), notification()))
        finally:
            await provider.aclose()
    assert [r.status for r in results] == ["sent", "failed"], results
    assert "address 127.0.0.2 is loopback" in results[1].detail
    assert fcm_server.grants == 1 and len(fcm_server.received) == 1


def test_fcm_credentials_mistakes_are_one_clear_line(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "notjson.json": "{",
        "user.json": json.dumps({"type": "authorized_user"}),
        "noemail.json": json.dumps({"type": "service_account", "project_id": "p"}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError, match=name):
            ServiceAccount.load(path)


# -- a service that is down -----------------------------------------------------------------------


async def test_a_service_that_is_down_is_retried_later(tmp_path: Path) -> None:
    key = VapidKey.generate()
    with WebPushServer() as webpush:
        subscription = webpush.subscribe()
        web = webpush_provider(webpush, key)
    with FcmServer() as fcm_down:
        fcm = fcm_provider(fcm_down, tmp_path)
    credentials = make_apns_key(tmp_path)
    with ApnsServer(credentials) as apns_down:
        apns = apns_provider(apns_down)
    # every server has stopped: nothing listens on their ports any more
    try:
        results = [
            await web.send(subscription.device(), notification()),
            await fcm.send(fcm_device(), notification()),
            await apns.send(apns_device(), notification()),
        ]
    finally:
        for provider in (web, fcm, apns):
            await provider.aclose()
    assert [r.status for r in results] == ["retry"] * 3, results
    # httpx's ConnectError (APNs, FCM), ConnectionRefusedError (Web Push, netguard/h1.py)
    assert all("Connect" in r.detail for r in results), results
