"""The pure parts of device push: what is major, coalescing states, allowed endpoints."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveupdates.diff.engine import diff
from liveupdates.events import created_event, updated_event
from liveupdates.netguard.hosts import endpoint_refusal, loopback_networks
from liveupdates.push import coalesce
from liveupdates.push.providers.vapid import origin
from liveupdates.push.providers.webpush import service_part
from liveupdates.push.rules import Change, change_from_event, wants
from tests.support.pushapp import story

DEFAULT_HOSTS = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
    "127.0.0.1:9000",
)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", True),
        ("https://web.push.apple.com/QGuY", True),
        ("https://wns2-par02p.notify.windows.com/w/?token=x", True),
        ("https://push.apple.com/x", False),  # the wildcard means subdomains only
        ("https://evilpush.apple.com.example/x", False),
        ("http://fcm.googleapis.com/fcm/send/abc", False),
        ("https://fcm.googleapis.com:8443/fcm/send/abc", False),
        ("https://fcm.googleapis.com:443/fcm/send/abc", True),
        ("https://user:pw@fcm.googleapis.com/x", False),
        ("http://127.0.0.1:9000/push/1", True),
        ("https://127.0.0.1:9000/push/1", True),
        ("http://127.0.0.1:9001/push/1", False),
        ("http://localhost:9000/push/1", False),
        ("ftp://fcm.googleapis.com/x", False),
        ("not a url", False),
    ],
)
def test_endpoint_hosts(url: str, allowed: bool) -> None:
    assert (endpoint_refusal(url, DEFAULT_HOSTS) is None) is allowed


def test_loopback_entries_open_the_guard_for_exactly_those_addresses() -> None:
    assert loopback_networks(DEFAULT_HOSTS) == ("127.0.0.1/32",)
    assert loopback_networks(("10.0.0.1:80", "[::1]:9000")) == ("::1/128",)


def test_a_port_entry_allows_https_there_and_http_only_on_loopback() -> None:
    assert (
        endpoint_refusal("https://push.intranet.example:8443/x", ["push.intranet.example:8443"])
        is None
    )
    assert endpoint_refusal("http://push.intranet.example:8443/x", ["push.intranet.example:8443"])
    assert endpoint_refusal("http://[::1]:9000/x", ["[::1]:9000"]) is None


def _change(event: dict[str, Any], channel: str = "story:harbour-wall") -> Change:
    change = change_from_event(channel, 7, "ep", event)
    assert change is not None
    return change


def test_major_rules() -> None:
    v1 = story(["One."])
    created = _change(created_event(v1))
    assert (created.kind, created.major, created.urgent, created.version) == (
        "created",
        True,
        True,
        1,
    )
    added = _change(updated_event(v1, story(["One.", "Two."]), 1))
    assert (added.major, added.urgent, added.summary) == (True, False, "1 paragraph added")
    fixed = _change(updated_event(v1, story(["One!"]), 1))
    assert (fixed.major, fixed.urgent) == (False, False)
    headline = _change(updated_event(v1, story(["One."], title="New headline"), 1))
    assert (headline.major, headline.urgent) == (True, True)
    on_feed = _change(updated_event(v1, story(["One.", "Two."]), 1), channel="feed:gazette")
    assert on_feed.major is False  # on a feed's channel only new stories are major
    assert wants("all", fixed) and not wants("major", fixed) and wants("major", added)
    assert change_from_event("story:x", 1, "e", {"kind": "reset"}) is None
    assert change_from_event("story:x", 1, "e", {"kind": "updated", "story": "x"}) is None
    assert diff(v1, v1, 1, 2)["paragraphs"] == []


def test_merge_is_idempotent_and_counts_changes() -> None:
    v1 = story(["One."])
    first = _change(updated_event(v1, story(["One.", "Two."]), 1))
    state = coalesce.merge(None, first, 100.0, 60.0)
    assert state is not None
    assert (state["n"], state["due"], state["v"]) == (1, 100.0, 2)
    assert coalesce.merge(state, first, 150.0, 60.0) == state  # read again: nothing changes
    taken = dict(state)
    sent = coalesce.after_sent(state, taken, 101.0, 60.0)
    assert sent is not None and (sent["n"], sent["due"], sent["last"]) == (0, None, 101.0)
    second = _change(updated_event(story(["One.", "Two."]), story(["One.", "Two.", "3."]), 2))
    later = coalesce.merge(sent, second, 120.0, 60.0)
    assert later is not None and later["due"] == 161.0  # the gap since the last send


def test_a_send_covers_only_what_it_read() -> None:
    v1 = story(["One."])
    a = _change(updated_event(v1, story(["One.", "Two."]), 1))
    b = _change(updated_event(story(["One.", "Two."]), story(["One.", "Two.", "3."]), 2))
    state = coalesce.merge(None, a, 100.0, 0.0)
    assert state is not None
    taken = dict(state)
    state = coalesce.merge(state, b, 100.5, 0.0)  # arrives while `taken` is being sent
    after = coalesce.after_sent(state, taken, 101.0, 0.0)
    assert after is not None
    assert (after["n"], after["due"], [n[0] for n in after["notes"]]) == (1, 101.0, [2])


def test_notification_and_cut() -> None:
    v1 = story(["One."])
    state: dict[str, Any] | None = None
    paragraphs = ["One."]
    for n in range(3):
        old = story(list(paragraphs))
        paragraphs.append(f"P{n}.")
        state = coalesce.merge(state, _change(updated_event(old, story(paragraphs), n + 1)), 1, 0)
    assert state is not None
    note = coalesce.notification(state, ttl=60)
    assert (note.updates, note.body, note.kind) == (3, "3 updates: 1 paragraph added", "updated")
    assert note.payload()["story"] == {
        "id": v1.id,
        "title": v1.title,
        "url": v1.url,
    }
    assert coalesce.cut("word " * 50, 20).endswith("…")
    assert len(coalesce.cut("word " * 50, 20)) <= 20
    assert coalesce.cut("short", 20) == "short"
    assert coalesce.retry_delay(0, 30) == 30
    assert coalesce.retry_delay(0, None) == 2
    assert coalesce.retry_delay(20, None) == 300


def _outcome(fn: Any, url: str) -> object:
    try:
        return fn(url)
    except ValueError as exc:
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["https", "http", "HTTPS", "ftp", " https", "https:"]),
    st.sampled_from(["", "user:pw@", "u@"]),
    st.sampled_from(
        ["fcm.googleapis.com", "web.push.apple.com", "127.0.0.1", "[::1]", "[::1", "ho\tst", ""]
    ),
    st.sampled_from(["", ":9000", ":443", ":x", ":99999"]),
    st.text(alphabet="/?#:@ab\t", max_size=8),
)
def test_one_check_per_push_service_answers_as_the_whole_endpoint_would(
    scheme: str, userinfo: str, host: str, port: str, rest: str
) -> None:
    """The Web Push sender checks an endpoint's service part once for all its endpoints: the
    allow-list's answer and the VAPID origin must be those of the whole URL."""
    url = f"{scheme}://{userinfo}{host}{port}{rest}"
    part = service_part(url)
    assert part is not None
    for check in (lambda u: endpoint_refusal(u, DEFAULT_HOSTS), origin):
        assert _outcome(check, part) == _outcome(check, url), (url, part)
