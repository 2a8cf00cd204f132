"""Story identity: the same story must keep one id however its feed dresses up the link."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from liveupdates.feeds.identity import TRACKING_PARAMS, canonical_url, story_id


@pytest.mark.parametrize(
    ("dressed", "plain"),
    [
        (
            "https://news.example.org/a/b?utm_source=rss&utm_medium=feed",
            "https://news.example.org/a/b",
        ),
        ("HTTPS://News.Example.ORG/a/b#comments", "https://news.example.org/a/b"),
        ("https://news.example.org:443/a/b", "https://news.example.org/a/b"),
        ("http://news.example.org:80/a/b", "http://news.example.org/a/b"),
        ("  https://news.example.org/a/b?fbclid=XYZ&gclid=1\n", "https://news.example.org/a/b"),
        (
            "https://news.example.org/a?at_medium=RSS&at_campaign=x&ocid=y",
            "https://news.example.org/a",
        ),
        ("https://news.example.org", "https://news.example.org/"),
    ],
)
def test_canonical_url_removes_noise(dressed: str, plain: str) -> None:
    assert canonical_url(dressed) == plain


def test_canonical_url_keeps_meaningful_params_in_order_and_encoding() -> None:
    url = "https://example.org/story?page=2&utm_campaign=x&id=a%20b&Mc_Cid=9&sort=new"
    assert canonical_url(url) == "https://example.org/story?page=2&id=a%20b&sort=new"


def test_canonical_url_keeps_path_case_port_and_userinfo() -> None:
    assert (
        canonical_url("https://u:p@Example.org:8443/Path/X")
        == "https://u:p@example.org:8443/Path/X"
    )


def test_canonical_url_keeps_ipv6_hosts() -> None:
    assert canonical_url("http://[::1]:80/x#y") == "http://[::1]/x"


@pytest.mark.parametrize("garbage", ["http://[::1/x", "http://example.org:notaport/x", "", "   "])
def test_canonical_url_returns_garbage_stripped(garbage: str) -> None:
    assert canonical_url(f" {garbage} ") == garbage.strip()


def test_tracking_params_are_a_frozenset_of_lowercase_names() -> None:
    assert isinstance(TRACKING_PARAMS, frozenset)
    # _is_tracking lowercases the query key first: an upper-case entry could never match.
    assert all(name == name.lower() for name in TRACKING_PARAMS)
    assert {"fbclid", "gclid", "mc_cid", "mc_eid", "ocid", "cmpid", "at_medium"} <= TRACKING_PARAMS


def test_story_id_is_short_url_safe_and_ignores_link_noise() -> None:
    ids = {
        story_id("feed", None, "https://news.example.org/a?utm_source=x"),
        story_id("feed", None, "HTTPS://NEWS.example.org/a#top"),
        story_id("feed", None, "https://news.example.org:443/a"),
    }
    assert len(ids) == 1
    (only,) = ids
    assert re.fullmatch(r"[a-z2-7]{16}", only)  # base32, as story_id promises


def test_story_id_prefers_guid_over_url() -> None:
    by_guid = story_id("feed", "tag:example.org,2026:42", "https://example.org/old-slug")
    assert by_guid == story_id("feed", "tag:example.org,2026:42", "https://example.org/new-slug")
    assert by_guid != story_id("feed", None, "https://example.org/old-slug")


def test_story_id_depends_on_feed() -> None:
    assert story_id("a", "g1", None) != story_id("b", "g1", None)


def test_story_id_falls_back_to_title() -> None:
    a = story_id("feed", None, None, title="Harbour  bridge reopens")
    assert a == story_id("feed", "", "  ", title="Harbour bridge reopens")
    assert a != story_id("feed", None, None, title="Harbour bridge closes")


def test_story_id_is_the_same_in_another_process() -> None:
    # hash() is salted per process; an id built on it would change on every restart.
    code = "from liveupdates.feeds.identity import story_id; print(story_id('f', None, 'http://x.org/a'))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == story_id("f", None, "http://x.org/a")
