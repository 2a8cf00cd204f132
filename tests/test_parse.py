"""parse_feed: RSS/Atom bytes in, entries out, problems reported instead of raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveupdates.feeds.parse import ParsedFeed, parse_feed
from tests.support.feedserver import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
RSS_HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_rss_2() -> None:
    parsed = parse_feed(
        fixture("rss_harbour_ferry.xml"), RSS_HEADERS, "https://gazette.example/rss"
    )

    assert parsed.error is None
    assert parsed.warning is None
    assert not parsed.bozo
    assert parsed.version == "rss20"
    assert parsed.title == "Port Ellery Gazette"
    assert [e.title for e in parsed.entries] == [
        "Night ferry delayed by fog over the Marrow Sound",
        "Lighthouse keeper\u2019s cottage to become a café",
        "Under-12s win the Saltmarsh Cup on penalties",
    ]
    assert parsed.entries[0].id == "peg-ferry-fog-1"
    assert parsed.entries[0].author == "Ilse Varga"


def test_relative_links_resolve_against_the_feed_url() -> None:
    parsed = parse_feed(
        fixture("rss_harbour_ferry.xml"), RSS_HEADERS, "https://gazette.example/rss"
    )

    assert parsed.entries[2].link == "https://gazette.example/2026/11/saltmarsh-cup"


def test_atom_1() -> None:
    parsed = parse_feed(
        fixture("atom_orchard_festival.xml"),
        {"Content-Type": "application/atom+xml"},  # header names in any case
        "https://courier.example/atom.xml",
    )

    assert parsed.error is None
    assert not parsed.bozo
    assert parsed.version == "atom10"
    assert parsed.title == "Brackenford Valley Courier"
    first = parsed.entries[0]
    assert first.title == "Orchard festival moves indoors as storm Wilma nears"
    assert first.author == "Tomasz Reyes"
    assert "Corn Exchange" in first.summary


def test_broken_xml_warns_but_keeps_what_parsed() -> None:
    parsed = parse_feed(
        fixture("rss_broken_truncated.xml"), RSS_HEADERS, "https://bulletin.example/"
    )

    assert parsed.bozo
    assert parsed.warning and "not well-formed" in parsed.warning
    assert parsed.error is None
    assert parsed.title == "Kestrel Hill Bulletin"
    titles = [e.get("title") for e in parsed.entries]
    assert titles[:2] == [
        "Bakery & post office reopen after flood repairs",
        "Parish council & school governors to meet",
    ]


def test_valid_feed_without_entries_is_not_an_error() -> None:
    parsed = parse_feed(fixture("rss_empty_channel.xml"), RSS_HEADERS, "https://quiet.example/")

    assert parsed.error is None
    assert parsed.entries == []
    assert parsed.title == "Quiet Day Desk"


def test_valid_empty_feed_served_without_content_type_is_still_a_feed() -> None:
    # feedparser flags the missing Content-Type as bozo; that is no reason to call it broken.
    parsed = parse_feed(fixture("rss_empty_channel.xml"), {}, "https://quiet.example/")

    assert parsed.bozo
    assert parsed.error is None


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "application/rss+xml", "empty body"),
        (b"   \n", "application/rss+xml", "empty body"),
        (b"<html><head><title>Hi</title></head><body><p>x</p></body></html>", "text/html", ""),
        (b'{"items": []}', "application/json", ""),
        (b"<rss version='2.0'><channel><title>Cut off", "application/rss+xml", ""),
        (b"\x00\xff\xfe binary junk \x89PNG", "application/octet-stream", ""),
    ],
)
def test_not_a_feed(body: bytes, content_type: str, reason: str) -> None:
    parsed = parse_feed(body, {"content-type": content_type}, "https://junk.example/")

    assert parsed.entries == []
    assert parsed.error is not None
    assert parsed.error.startswith("not a feed: ")
    assert reason in parsed.error


def test_body_mislabelled_utf8_but_latin1_does_not_crash() -> None:
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Café Gazette'
        "</title><item><title>Crème brûlée contest at the Hôtel Dieu</title>"
        "<guid>latin1-1</guid></item></channel></rss>"
    )
    body = text.encode("latin-1")  # bytes that are not valid UTF-8

    parsed = parse_feed(body, RSS_HEADERS, "https://cafe.example/")

    # feedparser notices the lie, falls back to a single-byte charset and says so.
    assert parsed.error is None
    assert parsed.bozo
    assert parsed.warning is not None and "declared as utf-8" in parsed.warning
    assert parsed.title == "Café Gazette"
    assert [e.title for e in parsed.entries] == ["Crème brûlée contest at the Hôtel Dieu"]


def test_http_charset_wins_over_xml_declaration() -> None:
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Noticias'
        "</title><item><title>Año nuevo en la plaza mayor</title><guid>es-1</guid></item>"
        "</channel></rss>"
    )
    body = text.encode("iso-8859-1")

    parsed = parse_feed(
        body, {"content-type": "application/xml; charset=iso-8859-1"}, "https://es.example/"
    )

    assert parsed.error is None
    assert parsed.entries[0].title == "Año nuevo en la plaza mayor"


def test_http_charset_disagreeing_with_utf8_body_still_yields_text() -> None:
    body = fixture("rss_harbour_ferry.xml")  # real UTF-8, but the server claims Latin-1

    parsed = parse_feed(
        body, {"content-type": "application/rss+xml; charset=iso-8859-1"}, "https://g.example/"
    )

    assert parsed.error is None
    assert len(parsed.entries) == 3
    assert all(isinstance(e.title, str) for e in parsed.entries)
    assert "Marrow Sound" in parsed.entries[0].title


def test_body_naming_a_file_is_never_opened(tmp_path: Path) -> None:
    feed_file = tmp_path / "rss_local.xml"
    feed_file.write_bytes(fixture("rss_harbour_ferry.xml"))

    parsed = parse_feed(str(feed_file).encode(), RSS_HEADERS, "https://x.example/")

    assert parsed.entries == []
    assert parsed.title == ""
    assert parsed.error is not None


def test_str_body_naming_a_file_is_never_opened(tmp_path: Path) -> None:
    feed_file = tmp_path / "rss_local.xml"
    feed_file.write_bytes(fixture("rss_harbour_ferry.xml"))

    parsed = parse_feed(str(feed_file), RSS_HEADERS, "https://x.example/")  # type: ignore[arg-type]

    assert parsed.entries == []
    assert parsed.error is not None


def test_body_that_is_a_url_is_never_fetched(feed_server: FeedServer) -> None:
    feed_server.set("/rss_remote.xml", fixture("rss_harbour_ferry.xml"))
    url = feed_server.url("/rss_remote.xml")

    as_bytes = parse_feed(url.encode(), RSS_HEADERS, url)
    as_str = parse_feed(url, RSS_HEADERS, url)  # type: ignore[arg-type]

    assert as_bytes.entries == [] and as_str.entries == []
    assert feed_server.count("/rss_remote.xml") == 0


def test_returns_parsed_feed_type() -> None:
    assert isinstance(parse_feed(b"", {}, ""), ParsedFeed)
