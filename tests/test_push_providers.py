"""The push providers against strict local push services (tests/support/pushservers.py).

Every server refuses what the real service would refuse and records it in `rejected`; every test
ends with that list empty unless it is about such a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from liveupdates.push.model import Device, Notification
from liveupdates.push.providers.vapid import VapidKey, VapidSigner, origin
from liveupdates.push.providers.webpush import (
    MAX_PLAINTEXT,
    WebPushProvider,
    parse_webpush_hosts,
    topic,
    webpush_host_allowed,
)
from tests.support.feedserver import ALLOW_LOOPBACK
from tests.support.pushservers import WebPushServer

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
