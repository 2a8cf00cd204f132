"""Feed ids: what the feeds file and the admin API accept, and the ids derived from a URL."""

from __future__ import annotations

import pytest

from liveupdates.feeds.config import FEED_ID_RE, FeedError, derived_feed_id, validate_feed
from liveupdates.ops.feeds import ApiError, new_feed
from liveupdates.settings import Settings

URL = "https://gazette.example/rss"


@pytest.mark.parametrize("feed_id", ["id\n", "id\r\n", "\nid", "id ", "-id", "a/b", "x" * 65, ""])
def test_an_id_must_match_whole(feed_id: str) -> None:
    with pytest.raises(FeedError, match="id must be"):
        validate_feed({"id": feed_id, "url": URL}, Settings())
    with pytest.raises(ApiError) as caught:
        new_feed({"url": URL, "id": feed_id}, Settings(), [], "unused")
    assert (caught.value.status, caught.value.code) == (422, "invalid_id")


@pytest.mark.parametrize(
    ("url", "start"),
    [
        ("https://gazette.example/rss", "gazette-example-"),
        ("http://127.0.0.1:8080/feed.xml", "127-0-0-1-"),
        ("http://[::1]:8080/feed.xml", "ipv6-1-"),
        ("http://[2001:db8::5]/feed.xml", "ipv6-2001-db8-5-"),
        ("https://bücher.example/neu.xml", "xn--bcher-kva-example-"),
        ("https://новости.example/rss", "xn--b1amnebsh-example-"),
        ("http://" + "long" * 30 + ".example/", "long"),
    ],
)
def test_a_derived_id_is_valid_and_readable(url: str, start: str) -> None:
    feed_id = derived_feed_id(url)
    assert FEED_ID_RE.fullmatch(feed_id), feed_id
    assert feed_id.startswith(start)
    assert derived_feed_id(url) == feed_id  # stable
    assert derived_feed_id(url + "?edition=2") != feed_id
    # The admin API takes it as the id of a feed added without one.
    assert new_feed({"url": url}, Settings(), [], feed_id).id == feed_id
