"""The scripted demo story: each stage makes exactly the change the README promises newcomers,
and the feed goes through the real parse -> normalise -> diff pipeline as such."""

from __future__ import annotations

import itertools
import re
import tomllib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from starlette.applications import Starlette

from liveupdates.demo.feed import demo_routes
from liveupdates.demo.story import (
    FEED_TITLE,
    MAX_ITEMS,
    SCRIPTS,
    STAGES_PER_STORY,
    UPDATED_NOTE,
    demo_feed_xml,
    stage_at,
    stories_at,
    story_at,
    story_number,
    story_slug,
)
from liveupdates.diff import apply, diff, summarise
from liveupdates.feeds.normalise import normalise_entry
from liveupdates.models import Snapshot

BASE = "http://127.0.0.1:8000"
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
STEP = 8.0


def feed_at(stage: int, *, run: str = "") -> str:
    # As the route calls it: `now` is when the stage began.
    return demo_feed_xml(
        stage,
        base_url=BASE,
        now=START + timedelta(seconds=stage * STEP),
        step_seconds=STEP,
        run=run,
    )


def snapshots_at(stage: int, *, run: str = "") -> list[Snapshot]:
    parsed = feedparser.parse(feed_at(stage, run=run))
    assert not parsed.bozo, parsed.get("bozo_exception")
    snapshots = [normalise_entry(entry, "demo") for entry in parsed.entries]
    assert all(snapshots)
    return [s for s in snapshots if s is not None]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


# -- the stages, as text -------------------------------------------------------------------------


@pytest.mark.parametrize("number", range(len(SCRIPTS)))
def test_each_stage_makes_its_promised_change(number: int) -> None:
    s0, s1, s2, s3, s4 = (story_at(number, stage) for stage in range(STAGES_PER_STORY))
    assert s0.title and len(s0.paragraphs) == 4

    # 1: one paragraph inserted strictly inside the story, everything else untouched.
    assert len(s1.paragraphs) == 5 and s1.title == s0.title
    (at,) = [
        i for i in range(5) if list(s1.paragraphs[:i] + s1.paragraphs[i + 1 :]) == [*s0.paragraphs]
    ]
    assert 0 < at < 4

    # 2: only the headline changes.
    assert s2.paragraphs == s1.paragraphs and s2.title != s1.title

    # 3: exactly one word of one paragraph changes.
    assert s3.title == s2.title and len(s3.paragraphs) == len(s2.paragraphs)
    changed = [(a, b) for a, b in zip(s2.paragraphs, s3.paragraphs, strict=True) if a != b]
    assert len(changed) == 1
    old_words, new_words = (words(p) for p in changed[0])
    assert len(old_words) == len(new_words)
    assert sum(a != b for a, b in zip(old_words, new_words, strict=True)) == 1

    # 4: the note appended at the end.
    assert s4.title == s3.title and s4.paragraphs == (*s3.paragraphs, UPDATED_NOTE)


def test_stories_follow_each_other_with_new_guids_for_ever() -> None:
    guids, slugs = set(), set()
    for number in range(3 * len(SCRIPTS) + 1):
        story = story_at(number, 0)
        guids.add(story.guid)
        slugs.add(story.slug)
        assert story_number(story.slug) == number
    assert len(guids) == len(slugs) == 3 * len(SCRIPTS) + 1
    # Story n starts right after story n-1 finished.
    assert stories_at(STAGES_PER_STORY)[0].number == 1
    assert stories_at(STAGES_PER_STORY - 1)[0].number == 0


def test_every_story_has_its_own_headline() -> None:
    count = 4 * len(SCRIPTS)
    for stage in range(STAGES_PER_STORY):
        headlines = [story_at(number, stage).title for number in range(count)]
        assert len(set(headlines)) == count, headlines


def test_the_demo_feed_has_one_title_everywhere() -> None:
    feeds = tomllib.loads(
        (Path(__file__).resolve().parent.parent / "config/feeds.toml").read_text()
    )
    [demo] = [f for f in feeds["feeds"] if f["id"] == "demo"]
    assert demo["title"] == FEED_TITLE
    assert f"<title>{FEED_TITLE}</title>" in feed_at(0)


def test_a_run_token_keeps_guids_and_links_of_two_runs_apart() -> None:
    assert story_at(0, 0, run="a").guid != story_at(0, 0, run="b").guid
    assert story_slug(0, "a") != story_slug(0, "b")
    assert story_number(story_slug(4, "a")) == 4
    assert story_number("nonsense") is None and story_number("4-wrong-slug") is None


def test_stage_at() -> None:
    assert stage_at(0, 8) == 0
    assert stage_at(7.99, 8) == 0
    assert stage_at(8, 8) == 1
    assert stage_at(100, 1.5) == 66
    assert stage_at(-3, 8) == 0
    assert stage_at(float("nan"), 8) == 0
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            stage_at(1, bad)


# -- the feed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [0, 1, 4, 5, 12, 27, 200])
def test_feed_is_valid_rss_with_a_bounded_history(stage: int) -> None:
    xml = feed_at(stage, run="r1")
    root = ET.fromstring(xml.encode())
    assert root.tag == "rss" and root.get("version") == "2.0"
    parsed = feedparser.parse(xml)
    assert not parsed.bozo
    assert parsed.version == "rss20"
    current = stage // STAGES_PER_STORY
    assert len(parsed.entries) == min(current + 1, MAX_ITEMS)
    for entry in parsed.entries:
        assert entry.link.startswith(f"{BASE}/demo/stories/")
        assert entry.id.startswith("tag:liveupdates.demo,2026:r1/")
        assert entry.content[0].type == "text/html" and "<p>" in entry.content[0].value
        assert entry.published_parsed is not None
    # Newest first: the story being written leads.
    assert parsed.entries[0].title == stories_at(stage)[0].title


def test_finished_stories_do_not_change_while_the_next_is_written() -> None:
    finished = {s.id: s for s in snapshots_at(STAGES_PER_STORY - 1)}
    for stage in range(STAGES_PER_STORY, 3 * STAGES_PER_STORY):
        for snapshot in snapshots_at(stage):
            if snapshot.id in finished:
                assert snapshot == finished[snapshot.id]
        finished.update({s.id: s for s in snapshots_at(stage)[1:]})


def test_markup_in_the_text_is_escaped() -> None:
    xml = demo_feed_xml(0, base_url="http://h/<x>&", now=START)
    ET.fromstring(xml.encode())  # well-formed despite the hostile base URL


# -- through the real pipeline -------------------------------------------------------------------


@pytest.mark.parametrize("number", range(len(SCRIPTS) + 1))
def test_pipeline_sees_the_expected_hunks(number: int) -> None:
    first = number * STAGES_PER_STORY
    versions = [snapshots_at(first + k)[0] for k in range(STAGES_PER_STORY)]
    assert len({v.id for v in versions}) == 1, "one story throughout its stages"
    assert versions[0].authors and versions[0].published

    pairs = list(itertools.pairwise(versions))
    diffs = [diff(old, new, k + 1, k + 2) for k, (old, new) in enumerate(pairs)]
    for d, (old, new) in zip(diffs, pairs, strict=True):
        assert apply(old, d) == new
    d1, d2, d3, d4 = diffs

    # Stage 1: one paragraph inserted in the middle; no field changes (dates stay put).
    assert d1["fields"] == {}
    [hunk] = d1["paragraphs"]
    assert hunk["op"] == "insert" and 0 < hunk["new_start"] < len(versions[0].paragraphs)
    assert summarise(d1) == "1 paragraph added"

    # Stage 2: the headline only.
    assert list(d2["fields"]) == ["title"] and d2["paragraphs"] == []
    assert summarise(d2) == "Headline changed"

    # Stage 3: one replace hunk whose word runs change a single token.
    assert d3["fields"] == {}
    [hunk] = d3["paragraphs"]
    assert hunk["op"] == "replace" and len(hunk["old"]) == len(hunk["new"]) == 1
    [pair] = hunk["words"]
    changes = [run for run in pair["runs"] if run["op"] != "equal"]
    assert len(changes) == 1 and changes[0]["op"] == "replace"
    assert words(changes[0]["old"]) and len(words(changes[0]["new"])) == 1
    assert summarise(d3) == "1 paragraph updated"

    # Stage 4: the note appended as the last paragraph.
    assert d4["fields"] == {}
    [hunk] = d4["paragraphs"]
    assert hunk["op"] == "insert" and hunk["new"] == [UPDATED_NOTE]
    assert hunk["new_start"] == len(versions[3].paragraphs)


def test_the_next_story_is_new_to_the_pipeline() -> None:
    last = snapshots_at(STAGES_PER_STORY - 1)[0]
    nxt = snapshots_at(STAGES_PER_STORY)[0]
    assert nxt.id != last.id and nxt.guid != last.guid and nxt.url != last.url


# -- the routes ----------------------------------------------------------------------------------


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = Starlette(routes=demo_routes(step_seconds=3600))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo.test")


async def test_feed_route_serves_rss_with_etag_and_304(client: httpx.AsyncClient) -> None:
    response = await client.get("/demo/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    etag = response.headers["etag"]
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo and len(parsed.entries) == 1
    assert parsed.entries[0].link.startswith("http://demo.test/demo/stories/0-")

    again = await client.get("/demo/feed.xml", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = await client.get("/demo/feed.xml", headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304

    later = await client.get("/demo/feed.xml?stage=7", headers={"If-None-Match": etag})
    assert later.status_code == 200 and later.headers["etag"] != etag
    assert len(feedparser.parse(later.content).entries) == 2

    assert (await client.get("/demo/feed.xml?stage=-1")).status_code == 400
    assert (await client.get("/demo/feed.xml?stage=x")).status_code == 400


async def test_pinned_stages_are_stable_between_requests(client: httpx.AsyncClient) -> None:
    first = await client.get("/demo/feed.xml?stage=3")
    second = await client.get("/demo/feed.xml?stage=3")
    assert first.content == second.content


async def test_story_page_serves_the_article(client: httpx.AsyncClient) -> None:
    feed = feedparser.parse((await client.get("/demo/feed.xml")).content)
    link = feed.entries[0].link
    page = await client.get(link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert feed.entries[0].title in page.text
    assert "Gullhaven" in page.text
    assert (await client.get("/demo/stories/0-nothing")).status_code == 404
    # A story not written yet does not exist.
    later = link.rsplit("/", 1)[1].replace("0-", "3-", 1)
    assert (await client.get(f"/demo/stories/{later}")).status_code == 404


def test_demo_routes_refuse_a_bad_step() -> None:
    with pytest.raises(ValueError):
        demo_routes(step_seconds=0)
