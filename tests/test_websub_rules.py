"""The pure WebSub rules: discovery, signatures, callback tokens, leases and what ops see."""

from __future__ import annotations

import pytest

from liveupdates.models import PushedBody, WebSubSubscription
from liveupdates.settings import SettingsError, load_settings
from liveupdates.websub import lease
from liveupdates.websub.bursts import newest_pushes
from liveupdates.websub.discovery import Discovered, discover, header_links
from liveupdates.websub.signature import sign, valid_signature
from liveupdates.websub.tokens import new_token, token_feed
from tests.support.stories import bridge_story, rss, storm_watch_story

URL = "https://gazette.example/feed.xml"


def test_link_headers_win_over_document_links() -> None:
    headers = {
        "Link": '<https://hub.example/>; rel="hub", </topic.xml>; rel="self"',
    }
    doc = [("hub", "https://other-hub.example/"), ("self", "https://gazette.example/doc")]
    assert discover(headers, doc, URL) == Discovered(
        "https://hub.example/", "https://gazette.example/topic.xml"
    )


def test_document_links_and_fallback_topic() -> None:
    assert discover({}, [("hub", "/hub")], URL) == Discovered("https://gazette.example/hub", URL)
    assert discover({}, [("alternate", "https://gazette.example/")], URL) is None
    # A hub that is not http(s) is no hub.
    assert discover({"link": '<javascript:alert(1)>; rel="hub"'}, [], URL) is None


def test_header_links_reads_several_rels() -> None:
    assert header_links('<https://h.example/>; rel="hub self"; title="x, y"') == [
        ("hub", "https://h.example/"),
        ("self", "https://h.example/"),
    ]


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signatures(method: str) -> None:
    body = b"<rss>news</rss>"
    assert valid_signature("secret", body, sign("secret", body, method))
    assert valid_signature(
        "secret", body, sign("secret", body, method).upper().replace(method.upper(), method)
    )
    assert not valid_signature("other", body, sign("secret", body, method))
    assert not valid_signature("secret", body + b" ", sign("secret", body, method))


@pytest.mark.parametrize(
    "header", [None, "", "sha256", "md5=abc", "sha256=zz", "sha256=\u00e9\u00e9"]
)
def test_malformed_signatures_are_refused(header: str | None) -> None:
    assert not valid_signature("secret", b"body", header)


def test_tokens_name_the_feed_and_are_checked_for_shape() -> None:
    token = new_token("harbour.gazette")
    assert token_feed(token) == "harbour.gazette"
    assert new_token("harbour.gazette") != token
    for bad in (
        "harbour.gazette",
        "harbour~short",
        "~" + "a" * 43,
        "bad id~" + "a" * 43,
        "\ud800~x",
    ):
        assert token_feed(bad) is None


def _sub(**changes: object) -> WebSubSubscription:
    sub = WebSubSubscription("f", "https://h/", URL, "s", "t", lease_seconds=1000, requested_at=0.0)
    for name, value in changes.items():
        setattr(sub, name, value)
    return sub


def test_renewal_a_quarter_before_the_end() -> None:
    active = _sub(state="active", expires_at=1000.0)
    assert not lease.needs_request(active, 749.0)
    assert lease.needs_request(active, 751.0)
    # Asked again only after a pause while the hub has not verified the renewal.
    asked = _sub(state="active", expires_at=1000.0, requested_at=751.0)
    assert not lease.needs_request(asked, 752.0)
    assert lease.needs_request(asked, 751.0 + lease.PENDING_TIMEOUT)
    assert lease.needs_request(None, 0.0)
    assert not lease.needs_request(_sub(state="pending"), 5.0)
    assert not lease.needs_request(_sub(state="denied"), lease.RETRY_FAILED + 1)
    assert lease.needs_request(_sub(state="denied"), lease.RETRY_DENIED + 1)
    assert lease.needs_request(_sub(state="failed"), lease.RETRY_FAILED + 1)


def test_poll_floor_only_while_pushed() -> None:
    active = _sub(state="active", expires_at=1000.0)
    assert lease.poll_floor(active, 10.0, fallback=900.0, interval=60.0) == 900.0
    assert lease.poll_floor(active, 10.0, fallback=900.0, interval=1800.0) == 1800.0
    assert lease.poll_floor(active, 1001.0, fallback=900.0, interval=60.0) is None  # lapsed
    assert lease.poll_floor(_sub(state="denied"), 10.0, fallback=900.0, interval=60.0) is None


def test_ops_view_says_why_a_feed_is_polled() -> None:
    off = lease.websub_view(None, 0.0, enabled=False, opted_in=True)
    assert off["state"] == "off" and "public_url" in off["reason"]
    assert "websub = false" in lease.websub_view(None, 0.0, enabled=True, opted_in=False)["reason"]
    active = lease.websub_view(
        _sub(state="active", expires_at=86400.0, pushes=3), 0.0, enabled=True, opted_in=True
    )
    assert active["summary"] == "active until 1970-01-02T00:00:00Z" and active["pushes"] == 3
    lapsed = lease.websub_view(
        _sub(state="active", expires_at=5.0), 10.0, enabled=True, opted_in=True
    )
    assert lapsed["summary"] == "failed: lease expired"
    denied = lease.websub_view(_sub(state="denied", reason="no"), 0.0, enabled=True, opted_in=True)
    assert denied["summary"] == "denied: no"


def test_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "LIVEUPDATES_PUBLIC_URL": "https://live.example.org",
            "LIVEUPDATES_WEBSUB_FALLBACK_INTERVAL": "600",
            "LIVEUPDATES_WEBSUB_LEASE_SECONDS": "3600",
        }
    )
    assert settings.public_url == "https://live.example.org"
    assert (settings.websub_fallback_interval, settings.websub_lease_seconds) == (600.0, 3600)
    defaults = load_settings({})
    assert defaults.public_url is None and defaults.websub_fallback_interval == 900.0
    for env, message in (
        ({"LIVEUPDATES_PUBLIC_URL": "live.example.org"}, "public_url"),
        ({"LIVEUPDATES_WEBSUB_LEASE_SECONDS": "5"}, "websub_lease_seconds"),
        ({"LIVEUPDATES_WEBSUB_FALLBACK_INTERVAL": "0"}, "websub_fallback_interval"),
    ):
        with pytest.raises(SettingsError, match=message):
            load_settings(env)


def test_a_batch_of_queued_pushes_keeps_the_newest_of_each_feed_and_every_entry() -> None:
    storm = [rss([storm_watch_story(n), bridge_story()]) for n in (1, 2, 3)]
    ferry = bridge_story(guid="ferry-1", link="https://gazette.example/news/ferry-ends")
    only_ferry = rss([ferry])  # a hub that sends only what changed
    batch = [
        PushedBody("a", storm[0]),
        PushedBody("b", storm[0]),
        PushedBody("a", storm[1]),
        PushedBody("a", only_ferry),
        PushedBody("a", storm[2]),
        PushedBody("b", b"<rss><channel><item><title>unnamed</title></item></channel></rss>"),
    ]
    kept = newest_pushes(batch)
    # a's first two bodies are named in full by its last one; the ferry-only body is not (the
    # last body lacks the ferry entry), so it stays, in its place. b's bodies name nothing in
    # common (its last entry has no guid, id or link): both stay.
    assert kept == [batch[1], batch[3], batch[4], batch[5]]
    assert newest_pushes([]) == []
