"""The scripted demo: fictional stories from a harbour town that change on a timetable. Pure code.

The demo exists so a newcomer sees every kind of change the service reports within a minute of
`liveupdates serve`: a story appears, gains a paragraph in the middle, has its headline corrected,
gets one word fixed, and is marked as updated. Then the next story begins, for ever, so the page
never goes quiet.

Everything here is a function of the stage number and a few explicit inputs; the clock and the
HTTP handling live in liveupdates.demo.feed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

# Stages of one story: 0 published, 1 paragraph inserted, 2 headline corrected, 3 word fixed,
# 4 "updated" note appended. The story after it starts at the next stage number.
STAGES_PER_STORY = 5

# Newest first, the current story plus this many finished ones, so the list on the page has some
# history without the feed growing for ever.
MAX_ITEMS = 5

UPDATED_NOTE = "This story has been updated."

FEED_TITLE = "Gullhaven Gazette (demo)"
FEED_DESCRIPTION = "Scripted news from a harbour town that does not exist."


@dataclass(frozen=True, slots=True)
class Script:
    """One story's text and the edits it goes through."""

    slug: str
    author: str
    standfirst: str  # the RSS description; never edited, so it never shows up in a diff
    title: str  # as first published (stages 0-1)
    corrected_title: str  # from stage 2
    paragraphs: tuple[str, ...]  # as first published
    inserted: str  # the paragraph added at stage 1...
    insert_at: int  # ...before this paragraph of `paragraphs` (never 0 or the end: "the middle")
    fix_paragraph: int  # index into `paragraphs` of the paragraph whose word is fixed at stage 3
    fix_old: str  # the word as first published (must occur exactly once in that paragraph)
    fix_new: str  # the word after the fix


SCRIPTS: tuple[Script, ...] = (
    Script(
        slug="storm-closes-gullhaven-harbour",
        author="Mara Quillon",
        standfirst="Gales and a spring tide shut the harbour and the sea road overnight.",
        title="Storm closes Gullhaven harbour for three days",
        corrected_title="Storm closes Gullhaven harbour for two days",
        paragraphs=(
            "Gullhaven's harbour gates were shut at dawn on Thursday as gusts of up to 70 miles "
            "an hour drove waves over the outer wall.",
            "The harbourmaster, Tobin Ashgrove, said no boats would leave or enter until the "
            "wind dropped and the gates had been checked for damage.",
            "Sea Road was closed between the lifeboat station and the old net lofts after "
            "shingle and weed were thrown across it by the high tide.",
            "The town council has opened the Assembly Rooms on Chapel Street as a rest centre "
            "for anyone whose home is without power.",
        ),
        inserted=(
            "Around 40 homes on the lower terraces lost power shortly after midnight, the "
            "electricity board said, and engineers were waiting for the wind to ease before "
            "climbing the poles."
        ),
        insert_at=2,
        fix_paragraph=0,
        fix_old="70",
        fix_new="75",
    ),
    Script(
        slug="tern-point-bridge-reopens",
        author="Ossian Feld",
        standfirst="The footbridge across the estuary is open again after eleven weeks of repairs.",
        title="Tern Point bridge reopens to walkers and cyclists",
        corrected_title="Tern Point footbridge reopens to walkers and cyclists",
        paragraphs=(
            "The footbridge linking Tern Point to Gullhaven's quay reopened on Saturday morning "
            "after eleven weeks of repairs to its timber deck.",
            "A small crowd crossed behind the town crier, Wilma Sorrel, who rang her bell from "
            "one end of the bridge to the other.",
            "Engineers replaced 214 deck boards and repainted the iron railings in the bridge's "
            "original sea green.",
            "The ferry that carried foot passengers across the estuary during the closure will "
            "stop running at the end of the month.",
        ),
        inserted=(
            "Shopkeepers on the quay said trade had fallen by almost half while the bridge was "
            "shut, and several hung bunting from their windows for the reopening."
        ),
        insert_at=2,
        fix_paragraph=2,
        fix_old="214",
        fix_new="241",
    ),
    Script(
        slug="gullhaven-ferry-new-timetable",
        author="Perrin Hale",
        standfirst="The island ferry returns from its refit with an earlier first sailing.",
        title="Island ferry back in service with a new winter timetable",
        corrected_title="Island ferry back in service with a new spring timetable",
        paragraphs=(
            "The Gullhaven island ferry, the Curlew, returned to service on Monday after a "
            "month in dry dock at Brenmouth.",
            "Under the new timetable the first sailing leaves the harbour at 06:45, half an hour "
            "earlier than before, so islanders can reach the mainland for the early train.",
            "The crossing still takes about 25 minutes in calm weather.",
            "Tickets bought before the refit remain valid until the end of the season, the "
            "ferry company said.",
        ),
        inserted=(
            "The refit gave the Curlew new engines, which the company says use a third less "
            "fuel, and a heated cabin for foot passengers."
        ),
        insert_at=1,
        fix_paragraph=2,
        fix_old="25",
        fix_new="35",
    ),
)


@dataclass(frozen=True, slots=True)
class DemoStory:
    """One story of the demo as it reads at one stage."""

    number: int  # 0, 1, 2... counting every story since the demo started
    stage: int  # 0..STAGES_PER_STORY-1 within this story
    guid: str
    slug: str
    author: str
    standfirst: str
    title: str
    paragraphs: tuple[str, ...]


def stage_at(elapsed_seconds: float, step_seconds: float) -> int:
    """The stage the demo has reached `elapsed_seconds` after it started."""
    if not step_seconds > 0 or not math.isfinite(step_seconds):
        raise ValueError(f"step_seconds must be a positive number, got {step_seconds!r}")
    if not elapsed_seconds > 0:  # also catches NaN
        return 0
    return int(elapsed_seconds // step_seconds)


def story_slug(number: int, run: str = "") -> str:
    """The URL slug of story `number`; `run` keeps slugs of different demo runs apart."""
    script = SCRIPTS[number % len(SCRIPTS)]
    return f"{number}-{script.slug}" + (f"-{run}" if run else "")


def story_number(slug: str) -> int | None:
    """The story number a slug from `story_slug` was made for, or None if it is not one."""
    head, _, _ = slug.partition("-")
    if not head.isdigit() or len(head) > 9:
        return None
    number = int(head)
    return number if slug.startswith(story_slug(number)) else None


def _headline(title: str, number: int) -> str:
    """The scripts come round again and again; from the second round on, a headline says which
    report it is, so no two stories in a reader's list share a headline."""
    round_ = number // len(SCRIPTS)
    return title if round_ == 0 else f"{title} (report {round_ + 1})"


def story_at(number: int, stage: int, *, run: str = "") -> DemoStory:
    """Story `number` as it reads at its own stage `stage` (clamped to the finished story)."""
    if number < 0:
        raise ValueError(f"story number must be >= 0, got {number}")
    stage = max(0, min(stage, STAGES_PER_STORY - 1))
    script = SCRIPTS[number % len(SCRIPTS)]
    paragraphs = list(script.paragraphs)
    if stage >= 3:
        fixed = paragraphs[script.fix_paragraph]
        paragraphs[script.fix_paragraph] = fixed.replace(script.fix_old, script.fix_new, 1)
    if stage >= 1:
        paragraphs.insert(script.insert_at, script.inserted)
    if stage >= 4:
        paragraphs.append(UPDATED_NOTE)
    # The run and the number make every story new to the store, even after a restart that reuses
    # the data directory: a repeated guid would read as the old story being rewritten.
    run_part = f"{run}/" if run else ""
    return DemoStory(
        number=number,
        stage=stage,
        guid=f"tag:liveupdates.demo,2026:{run_part}{number}",
        slug=story_slug(number, run),
        author=script.author,
        standfirst=script.standfirst,
        title=_headline(script.corrected_title if stage >= 2 else script.title, number),
        paragraphs=tuple(paragraphs),
    )


def stories_at(stage_index: int, *, run: str = "") -> list[DemoStory]:
    """The stories in the feed at demo stage `stage_index`, newest (the one changing) first."""
    stage_index = max(0, stage_index)
    current = stage_index // STAGES_PER_STORY
    stories = [story_at(current, stage_index % STAGES_PER_STORY, run=run)]
    for number in range(current - 1, max(-1, current - MAX_ITEMS), -1):
        stories.append(story_at(number, STAGES_PER_STORY - 1, run=run))
    return stories


def article_html(story: DemoStory) -> str:
    """The body as the feed carries it in content:encoded: one <p> per paragraph."""
    return "".join(f"<p>{escape(p, quote=False)}</p>" for p in story.paragraphs)


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside CDATA; split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def demo_feed_xml(
    stage_index: int,
    *,
    base_url: str,
    now: datetime,
    step_seconds: float = 8.0,
    run: str = "",
) -> str:
    """The demo RSS 2.0 feed at `stage_index`.

    `now` is when this stage began: each story's pubDate is derived from it and `step_seconds`
    (story n was published at stage 5n), so the dates stay put across polls of one stage and a
    story's publication time never shows up as an edit.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    base = base_url.rstrip("/")
    items: list[str] = []
    for story in stories_at(stage_index, run=run):
        stages_ago = max(0, stage_index) - story.number * STAGES_PER_STORY
        published = now - timedelta(seconds=stages_ago * step_seconds)
        items.append(
            "    <item>\n"
            f"      <title>{escape(story.title)}</title>\n"
            f"      <link>{escape(base)}/demo/stories/{escape(story.slug)}</link>\n"
            f'      <guid isPermaLink="false">{escape(story.guid)}</guid>\n'
            f"      <pubDate>{format_datetime(published.astimezone(UTC), usegmt=True)}</pubDate>\n"
            f"      <dc:creator>{escape(story.author)}</dc:creator>\n"
            f"      <description>{escape(story.standfirst)}</description>\n"
            f"      <content:encoded>{_cdata(article_html(story))}</content:encoded>\n"
            "    </item>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        "  <channel>\n"
        f"    <title>{escape(FEED_TITLE)}</title>\n"
        f"    <link>{escape(base)}/</link>\n"
        f"    <description>{escape(FEED_DESCRIPTION)}</description>\n"
        "    <language>en</language>\n"
        f"    <lastBuildDate>{format_datetime(now.astimezone(UTC), usegmt=True)}</lastBuildDate>\n"
        + "".join(items)
        + "  </channel>\n</rss>\n"
    )
