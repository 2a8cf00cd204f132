"""Robustness: the pure stages never raise on anything feedparser makes of real-world feed files.

Runs over feedparser's own 2,125 sample feeds when the shared corpora folder sits next to the repo,
and always over the hostile feeds kept in tests/fixtures/feeds/, so a fresh clone tests something.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import traceback
import warnings
from pathlib import Path
from typing import Any

import feedparser

from liveupdates.diff import apply, diff, summarise
from liveupdates.diff.summary import summarise_created
from liveupdates.feeds.identity import story_id
from liveupdates.feeds.normalise import content_hash, normalise_entry
from liveupdates.models import Snapshot

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPUS = REPO.parent / "shared" / "corpora" / "feedparser-tests"
FIXTURE_FEEDS = REPO / "tests" / "fixtures" / "feeds"
NASTY_FEEDS = FIXTURE_FEEDS / "nasty"

_ID = re.compile(r"[a-z2-7]{16}")
_HASH = re.compile(r"[0-9a-f]{64}")


def _parse(path: Path) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feedparser warns about its own deprecations
        # BytesIO: feedparser would treat bytes that name an existing file as a path to open.
        return list(feedparser.parse(io.BytesIO(path.read_bytes())).entries)


def _check_diff(old: Snapshot, new: Snapshot) -> None:
    d = diff(old, new, 1, 2)
    expected = dataclasses.replace(new, id=old.id, feed=old.feed, guid=old.guid)
    assert apply(old, d) == expected
    assert apply(old, json.loads(json.dumps(d))) == expected
    assert summarise(d)


def _exercise(path: Path) -> list[Snapshot]:
    """Every pure stage over every entry of one file; raises on the first broken promise."""
    snapshots: list[Snapshot] = []
    for entry in _parse(path):
        snapshot = normalise_entry(entry, "corpus")
        if snapshot is None:
            continue
        assert _ID.fullmatch(snapshot.id)
        assert _ID.fullmatch(story_id("corpus", snapshot.guid, snapshot.url, title=snapshot.title))
        assert _HASH.fullmatch(content_hash(snapshot))
        assert all(p and p == " ".join(p.split()) for p in snapshot.paragraphs)
        assert summarise_created(snapshot)
        empty = Snapshot(id=snapshot.id, feed=snapshot.feed, url="", title="")
        _check_diff(empty, snapshot)
        _check_diff(snapshot, empty)
        if snapshots:
            _check_diff(snapshots[-1], snapshot)
        snapshots.append(snapshot)
    return snapshots


def _run(paths: list[Path]) -> tuple[int, list[str]]:
    stories, failures = 0, []
    for path in paths:
        try:
            stories += len(_exercise(path))
        except Exception:
            failures.append(f"{path}:\n{traceback.format_exc(limit=3)}")
    return stories, failures


def test_pure_stages_survive_every_feed_file() -> None:
    fixtures = sorted(p for p in FIXTURE_FEEDS.rglob("*") if p.is_file())
    shared = sorted(SHARED_CORPUS.rglob("*.xml")) if SHARED_CORPUS.is_dir() else []
    stories, failures = _run(fixtures + shared)
    assert not failures, f"{len(failures)} files broke a pure stage:\n" + "\n".join(failures[:10])
    assert len(fixtures) >= 6
    assert stories > (500 if shared else 5)


def _stories(name: str) -> list[Snapshot]:
    return _exercise(NASTY_FEEDS / name)


def test_empty_file_gives_no_story() -> None:
    assert _stories("empty.xml") == []


def test_broken_xml_still_gives_what_the_loose_parser_recovered() -> None:
    (story,) = _stories("broken-xml.xml")
    assert story.title == "Second item never closes bold"


def test_wrong_encoding_declaration_is_read_as_intended() -> None:
    (story,) = _stories("wrong-encoding.xml")
    assert story.title == "Crème brûlée prices soar"
    assert story.paragraphs == ("The café on the quay raised prices by 20%.",)


def test_entities_and_cdata_become_plain_text() -> None:
    first, second = _stories("entities.xml")
    assert first.title.startswith("Café &amp; bar reopen — 😀")
    assert first.url == "https://entity.example/a?x=1"
    assert first.paragraphs[0] == "One <two> three"
    assert second.title == 'Quote "marks" & <angles>'
    assert second.paragraphs == ("Nested end",)


def test_odd_atom_entries_keep_only_readable_text() -> None:
    rich, repeated = _stories("atom-odd.xml")
    assert (rich.title, rich.paragraphs, rich.authors) == (
        "Rich title",
        ("Score 2-1",),
        ("desk@odd.example",),
    )
    assert rich.updated is None  # "not a date" is no date
    # Two entries with one guid are one story, seen twice.
    assert repeated.id == rich.id


def _memo_matches_full_read(path: Path) -> int:
    """Read a file after itself (every entry remembered), after a version of it without its
    first entry (that entry the only one parsed again) and after a version whose feed-level
    dates were other (the memo holds all entries): each time the result is what a full read
    gives. Returns how many entries were taken from the memo."""
    from liveupdates.feeds.entries import _FEED_DATE, read_entries, split_entries

    body = path.read_bytes()
    spans = split_entries(body)
    if not spans:
        return 0
    headers = {"content-type": "application/xml"}
    url = "https://corpus.example/feed"
    start, end = spans[0]
    reused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = read_entries(body, headers, url, "corpus", None)
        skeleton = body[: spans[0][0]], body[spans[-1][1] :]
        restamped = b"".join(
            (
                _FEED_DATE.sub(rb"\1Mon, 01 Jan 2001 00:00:00 GMT\3", skeleton[0]),
                body[spans[0][0] : spans[-1][1]],
                _FEED_DATE.sub(rb"\1Mon, 01 Jan 2001 00:00:00 GMT\3", skeleton[1]),
            )
        )
        for before in (body, body[:start] + body[end:], restamped):
            memo = read_entries(before, headers, url, "corpus", None).memo
            got = read_entries(body, headers, url, "corpus", memo)
            assert (got.read, got.total, got.parsed.links, got.parsed.error) == (
                full.read,
                full.total,
                full.parsed.links,
                full.parsed.error,
            )
            reused += got.reused
    return reused


def test_entries_remembered_from_the_last_read_give_what_a_full_read_gives() -> None:
    fixtures = sorted(p for p in FIXTURE_FEEDS.rglob("*") if p.is_file())
    shared = sorted(SHARED_CORPUS.rglob("*.xml")) if SHARED_CORPUS.is_dir() else []
    reused, failures = 0, []
    for path in fixtures + shared:
        try:
            reused += _memo_matches_full_read(path)
        except Exception:
            failures.append(f"{path}:\n{traceback.format_exc(limit=3)}")
    assert not failures, f"{len(failures)} files read differently:\n" + "\n".join(failures[:10])
    assert reused > 0
