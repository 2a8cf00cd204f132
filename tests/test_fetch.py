"""Fetcher against a real HTTP server on loopback: conditional GETs, limits, and failure reporting."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import pytest

from liveupdates import __version__
from liveupdates.feeds.fetch import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_RETRY_AFTER_SECONDS,
    Fetcher,
    FetchResult,
    next_fetch_state,
    parse_retry_after,
)
from liveupdates.feeds.parse import parse_feed
from liveupdates.models import FetchState
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
RSS = (FIXTURES / "rss_harbour_ferry.xml").read_bytes()
ATOM = (FIXTURES / "atom_orchard_festival.xml").read_bytes()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(allow_networks=[ALLOW_LOOPBACK]) as f:
        yield f


def closed_port() -> int:
    # Bind without listening, then close: nothing accepts on this port, so connect is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the happy path -------------------------------------------------------------------------------


async def test_fetches_rss_and_parses_it(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/rss_harbour.xml", RSS)

    result = await fetcher.fetch(feed_server.url("/rss_harbour.xml"), FetchState())

    assert result.status == "ok"
    assert result.http_status == 200
    assert result.body == RSS
    assert result.error is None
    assert result.url == feed_server.url("/rss_harbour.xml")
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.duration_ms > 0
    parsed = parse_feed(result.body, result.headers, result.url)
    assert parsed.title == "Port Ellery Gazette"
    assert len(parsed.entries) == 3


async def test_fetches_atom(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/atom.xml", ATOM, content_type="application/atom+xml")

    result = await fetcher.fetch(feed_server.url("/atom.xml"), FetchState())

    assert result.status == "ok"
    assert result.body is not None
    parsed = parse_feed(result.body, result.headers, result.url)
    assert parsed.version == "atom10"
    assert [e.id for e in parsed.entries] == [
        "urn:uuid:courier-orchard-festival",
        "urn:uuid:courier-wend-footbridge",
    ]


async def test_sends_project_user_agent(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/ua.xml", RSS)

    await fetcher.fetch(feed_server.url("/ua.xml"), FetchState())

    (seen,) = feed_server.requests("/ua.xml")
    assert seen.method == "GET"
    assert seen.headers["user-agent"] == (
        f"liveupdates/{__version__} (+https://github.com/liveupdates/liveupdates)"
    )


async def test_gzip_response_is_decoded(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/gz.xml", RSS, gzip=True)

    result = await fetcher.fetch(feed_server.url("/gz.xml"), FetchState())

    assert result.status == "ok"
    assert result.headers["content-encoding"] == "gzip"
    assert result.body == RSS
    assert "gzip" in feed_server.requests("/gz.xml")[0].headers["accept-encoding"]


# -- conditional requests -------------------------------------------------------------------------


async def test_etag_round_trip_gives_304_without_body(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    url = feed_server.url("/etag.xml")
    feed_server.set("/etag.xml", RSS, etag=True)

    first = await fetcher.fetch(url, FetchState())
    state = next_fetch_state(FetchState(), first, now=1000.0)
    second = await fetcher.fetch(url, state)

    assert first.status == "ok" and first.etag
    assert state.etag == first.etag
    assert "if-none-match" not in feed_server.requests("/etag.xml")[0].headers
    assert feed_server.requests("/etag.xml")[1].headers["if-none-match"] == first.etag
    assert second.status == "not_modified"
    assert second.http_status == 304
    assert second.body is None
    assert second.etag == first.etag

    # New content, new ETag: the same conditional request now gets the body.
    feed_server.set("/etag.xml", ATOM, etag=True)
    third = await fetcher.fetch(url, next_fetch_state(state, second, now=1001.0))
    assert third.status == "ok"
    assert third.body == ATOM
    assert third.etag != first.etag


async def test_a_304_leaves_its_connection_to_the_next_poll(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    url = feed_server.url("/kept.xml")
    feed_server.set("/kept.xml", RSS, etag=True)
    state = FetchState()
    for _ in range(3):
        result = await fetcher.fetch(url, state)
        state = next_fetch_state(state, result, now=1000.0)
    assert result.status == "not_modified"
    # One connection for the 200 and both 304s: a 304 closed unread would drop it.
    assert len({r.client for r in feed_server.requests("/kept.xml")}) == 1


async def test_many_polls_in_flight_reuse_their_connections(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    # 30 polls always in flight, more than httpx keeps alive by default (20): a connection that
    # turns idle serves the next poll instead of being closed and replaced by a new one.
    paths = [f"/many{i}.xml" for i in range(30)]
    for path in paths:
        feed_server.set(path, RSS, delay=0.02)
    gate = asyncio.Semaphore(30)

    async def poll(path: str) -> None:
        async with gate:
            await fetcher.fetch(feed_server.url(path), FetchState())

    await asyncio.gather(*(poll(p) for p in paths * 4))
    clients = {r.client for p in paths for r in feed_server.requests(p)}
    assert len(clients) <= 30


async def test_last_modified_round_trip_gives_304_without_body(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    url = feed_server.url("/lm.xml")
    feed_server.set("/lm.xml", RSS, last_modified=True)

    first = await fetcher.fetch(url, FetchState())
    state = next_fetch_state(FetchState(), first, now=1000.0)
    second = await fetcher.fetch(url, state)

    assert first.status == "ok" and first.last_modified
    assert first.etag is None
    assert feed_server.requests("/lm.xml")[1].headers["if-modified-since"] == first.last_modified
    assert second.status == "not_modified"
    assert second.body is None
    assert second.last_modified == first.last_modified

    feed_server.set("/lm.xml", ATOM, last_modified=True)
    third = await fetcher.fetch(url, state)
    assert third.status == "ok"
    assert third.body == ATOM
    assert third.last_modified != first.last_modified


async def test_304_keeps_old_validators_when_server_omits_them(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    # A server that answers 304 to anything and sends no validators with it.
    feed_server.set("/bare304.xml", b"", status=304)
    state = FetchState(etag='"old-tag"', last_modified="Tue, 24 Nov 2026 10:00:00 GMT")

    result = await fetcher.fetch(feed_server.url("/bare304.xml"), state)

    assert result.status == "not_modified"
    assert result.etag == '"old-tag"'
    assert result.last_modified == "Tue, 24 Nov 2026 10:00:00 GMT"


# -- limits ----------------------------------------------------------------------------------------


def test_default_limits() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 10 * 1024 * 1024 == 10485760


async def test_body_over_cap_is_an_error(feed_server: FeedServer) -> None:
    feed_server.set_huge("/huge.xml", 11 * 1024 * 1024)

    async with Fetcher(max_body_bytes=64 * 1024, allow_networks=[ALLOW_LOOPBACK]) as small:
        result = await small.fetch(feed_server.url("/huge.xml"), FetchState())

    assert result.status == "error"
    assert result.error == "body exceeds 65536 bytes"
    assert result.body is None


async def test_default_cap_rejects_11_mib(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set_huge("/huge.xml", 11 * 1024 * 1024)

    result = await fetcher.fetch(feed_server.url("/huge.xml"), FetchState())

    assert result.status == "error"
    assert result.error == "body exceeds 10485760 bytes"


async def test_cap_applies_to_decoded_bytes(feed_server: FeedServer) -> None:
    # Compresses to a few KiB on the wire but inflates far past the cap: a gzip bomb in miniature.
    feed_server.set_huge("/bomb.xml", 4 * 1024 * 1024, gzip=True)

    async with Fetcher(max_body_bytes=64 * 1024, allow_networks=[ALLOW_LOOPBACK]) as small:
        result = await small.fetch(feed_server.url("/bomb.xml"), FetchState())

    assert result.status == "error"
    assert result.error == "body exceeds 65536 bytes"


async def test_body_just_under_cap_is_fine(feed_server: FeedServer) -> None:
    feed_server.set_huge("/fits.xml", 64 * 1024, gzip=True)

    async with Fetcher(max_body_bytes=64 * 1024, allow_networks=[ALLOW_LOOPBACK]) as small:
        result = await small.fetch(feed_server.url("/fits.xml"), FetchState())

    assert result.status == "ok"
    assert result.body is not None and len(result.body) == 64 * 1024


async def test_slow_server_times_out(feed_server: FeedServer) -> None:
    feed_server.set("/slow.xml", RSS, delay=5.0)

    started = time.monotonic()
    async with Fetcher(total_timeout=0.5, allow_networks=[ALLOW_LOOPBACK]) as quick:
        result = await quick.fetch(feed_server.url("/slow.xml"), FetchState())
    elapsed = time.monotonic() - started

    assert result.status == "error"
    assert result.error == "timed out after 0.5 s"
    assert elapsed < 3.0


async def test_total_deadline_covers_a_trickling_body(feed_server: FeedServer) -> None:
    # Each piece arrives well within httpx's per-read timeout; only a whole-request deadline
    # stops this from taking 16 * 0.2 s.
    feed_server.set("/trickle.xml", RSS, trickle=0.2)

    started = time.monotonic()
    async with Fetcher(total_timeout=0.5, allow_networks=[ALLOW_LOOPBACK]) as quick:
        result = await quick.fetch(feed_server.url("/trickle.xml"), FetchState())
    elapsed = time.monotonic() - started

    assert result.status == "error"
    assert result.error == "timed out after 0.5 s"
    assert elapsed < 2.0


async def test_redirect_loop_is_an_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/loop-a", redirect_to="/loop-b")
    feed_server.set("/loop-b", redirect_to="/loop-a")

    result = await fetcher.fetch(feed_server.url("/loop-a"), FetchState())

    assert result.status == "error"
    assert result.error == "too many redirects"
    # The first request plus at most five followed redirects.
    assert feed_server.count("/loop-a") + feed_server.count("/loop-b") == 6


async def test_three_redirects_are_followed(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/hop1", redirect_to="/hop2")
    feed_server.set("/hop2", redirect_to="/hop3")
    feed_server.set("/hop3", redirect_to="/final.xml")
    feed_server.set("/final.xml", RSS)

    result = await fetcher.fetch(feed_server.url("/hop1"), FetchState())

    assert result.status == "ok"
    assert result.url == feed_server.url("/final.xml")
    assert result.body == RSS


async def test_redirect_to_file_url_is_refused(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/sneaky", redirect_to="file:///etc/passwd")

    result = await fetcher.fetch(feed_server.url("/sneaky"), FetchState())

    assert result.status == "error"
    assert result.error is not None and "unsupported" in result.error
    assert result.body is None


# -- failures ---------------------------------------------------------------------------------------


async def test_429_with_retry_after(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/busy.xml", b"slow down", status=429, headers={"Retry-After": "120"})
    old = FetchState(etag='"kept"', consecutive_errors=2)

    result = await fetcher.fetch(feed_server.url("/busy.xml"), old)

    assert result.status == "error"
    assert result.http_status == 429
    assert result.error == "HTTP 429"
    assert result.retry_after_seconds == 120.0
    assert result.body is None
    state = next_fetch_state(old, result, now=5000.0)
    assert state == FetchState(etag='"kept"', not_before=5120.0, consecutive_errors=3)


async def test_503_with_http_date_retry_after(feed_server: FeedServer, fetcher: Fetcher) -> None:
    when = formatdate(time.time() + 600, usegmt=True)
    feed_server.set("/down.xml", status=503, headers={"Retry-After": when})

    result = await fetcher.fetch(feed_server.url("/down.xml"), FetchState())

    assert result.status == "error"
    assert result.error == "HTTP 503"
    assert result.retry_after_seconds is not None
    assert 590 <= result.retry_after_seconds <= 600


async def test_server_error_is_reported(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.set("/broken.xml", b"oops", status=500, headers={"Retry-After": "30"})

    result = await fetcher.fetch(feed_server.url("/broken.xml"), FetchState())

    assert result.status == "error"
    assert result.error == "HTTP 500"
    assert result.http_status == 500
    # Retry-After only means "come back later" on 429 and 503.
    assert result.retry_after_seconds is None


async def test_missing_path_is_404(feed_server: FeedServer, fetcher: Fetcher) -> None:
    result = await fetcher.fetch(feed_server.url("/nope.xml"), FetchState())

    assert result.status == "error"
    assert result.error == "HTTP 404"


async def test_connection_refused(fetcher: Fetcher) -> None:
    result = await fetcher.fetch(f"http://127.0.0.1:{closed_port()}/feed.xml", FetchState())

    assert result.status == "error"
    assert result.error == "connection refused"
    assert result.http_status is None


@pytest.mark.parametrize(
    "make_url",
    [
        lambda port: "file:///etc/passwd",
        lambda port: f"ftp://127.0.0.1:{port}/rss_harbour.xml",
        lambda port: f"gopher://127.0.0.1:{port}/rss_harbour.xml",
        lambda port: "/rss_harbour.xml",
        lambda port: "http://",
        lambda port: "",
    ],
)
async def test_non_http_urls_are_refused_without_a_request(
    feed_server: FeedServer, fetcher: Fetcher, make_url
) -> None:
    feed_server.set("/rss_harbour.xml", RSS)

    result = await fetcher.fetch(make_url(feed_server.port), FetchState())

    assert result.status == "error"
    assert result.error
    assert result.body is None
    assert feed_server.count("/rss_harbour.xml") == 0


async def test_file_url_error_names_the_scheme(fetcher: Fetcher) -> None:
    result = await fetcher.fetch("file:///etc/passwd", FetchState())

    assert result.error == "unsupported URL scheme 'file': only http and https are fetched"


# -- pure helpers -------------------------------------------------------------------------------------


def test_next_state_on_success_resets_errors_and_takes_new_validators() -> None:
    old = FetchState(etag='"a"', last_modified="x", not_before=99.0, consecutive_errors=4)
    result = FetchResult(status="ok", url="http://h/", http_status=200, body=b"", etag='"b"')

    assert next_fetch_state(old, result, now=100.0) == FetchState(etag='"b"')


def test_next_state_on_error_keeps_validators() -> None:
    old = FetchState(etag='"a"', last_modified="x", consecutive_errors=1)
    result = FetchResult(status="error", url="http://h/", error="connection refused")

    assert next_fetch_state(old, result, now=100.0) == FetchState(
        etag='"a"', last_modified="x", consecutive_errors=2
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("999999999", MAX_RETRY_AFTER_SECONDS),
        ("Thu, 01 Jan 1970 00:10:00 GMT", 500.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=100.0) == expected
