"""The newcomer's demo in a real Chromium: `liveupdates serve` as a process, the page, live updates.

Also checks the page's JavaScript diff-apply against the Python engine it ports, on the same diffs.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from liveupdates.demo.story import STAGES_PER_STORY, UPDATED_NOTE, story_at
from liveupdates.diff import apply, diff
from liveupdates.models import Snapshot

STATIC = Path(__file__).resolve().parent.parent / "liveupdates" / "static"
START_DEADLINE = 40.0  # seconds for `liveupdates serve` to answer /healthz
UPDATE_TIMEOUT_MS = 30_000  # generous: a poll every 2 s, a demo change every 1.5 s
SCREENSHOT = Path("/tmp/demo.png")


# -- the page's diff engine against the Python one ------------------------------------------------

VOCABULARY = [
    *("harbour", "ferry", "tide", "gale", "40", "70", "bridge", "quay", "council,", "said."),
    *("the", "a", "of", "on", "Gullhaven", "lifeboat", "crew", "(pier)", "—", "café", "naïve"),
    *("12:30", "storm's"),
]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 12)))


def _edit(rng: random.Random, paragraphs: list[str]) -> list[str]:
    result = list(paragraphs)
    for _ in range(rng.randint(0, 4)):
        what = rng.choice(("insert", "delete", "reword", "swap"))
        if what == "insert" or not result:
            result.insert(rng.randint(0, len(result)), _sentence(rng))
        elif what == "delete":
            del result[rng.randrange(len(result))]
        elif what == "reword":
            i = rng.randrange(len(result))
            tokens = result[i].split(" ")
            tokens[rng.randrange(len(tokens))] = rng.choice(VOCABULARY)
            result[i] = " ".join(tokens)
        else:
            i = rng.randrange(len(result))
            result[i] = _sentence(rng)
    return result


def _snapshot_pairs() -> list[tuple[Snapshot, Snapshot]]:
    pairs: list[tuple[Snapshot, Snapshot]] = []
    # The demo's own steps first: what the page meets in the browser test below.
    for number in range(3):
        stages = [story_at(number, k) for k in range(STAGES_PER_STORY)]
        snaps = [
            Snapshot(id="s", feed="demo", url="http://x/", title=s.title, paragraphs=s.paragraphs)
            for s in stages
        ]
        pairs += list(itertools.pairwise(snaps))
    rng = random.Random(20261126)
    for _ in range(150):
        old = Snapshot(
            id="s",
            feed="f",
            url="http://x/a",
            title=_sentence(rng),
            authors=("A",),
            published=rng.choice((None, "2026-11-26T09:00:00Z")),
            paragraphs=tuple(_sentence(rng) for _ in range(rng.randint(0, 6))),
        )
        new = replace(
            old,
            title=rng.choice((old.title, _sentence(rng))),
            authors=rng.choice((old.authors, ("A", "B"))),
            published=rng.choice((old.published, "2026-11-26T10:00:00Z")),
            updated=rng.choice((None, "2026-11-26T11:00:00Z")),
            paragraphs=tuple(_edit(rng, list(old.paragraphs))),
        )
        pairs.append((old, new))
    return pairs


def _js_json(snapshot: Snapshot, version: int) -> dict[str, Any]:
    return {**snapshot.to_json(), "version": version}


def test_page_applies_diffs_exactly_as_the_python_engine(browser_page: Page) -> None:
    page = browser_page
    page.set_content("<!doctype html><title>LiveDiff</title><body></body>")
    page.add_script_tag(path=str(STATIC / "app.js"))

    cases = []
    for old, new in _snapshot_pairs():
        d = json.loads(json.dumps(diff(old, new, 1, 2)))
        assert apply(old, d) == new
        # The same diff on a copy that is not its old version: both engines must refuse it.
        other = replace(old, paragraphs=(*old.paragraphs, "an extra paragraph"))
        if old.title and d["fields"].get("title"):
            other = replace(other, title=old.title + "!")
        try:
            apply(other, d)
            python_refuses = False
        except ValueError:
            python_refuses = True
        cases.append(
            {
                "old": _js_json(old, 1),
                "new": _js_json(new, 2),
                "other": _js_json(other, 1),
                "diff": d,
                "python_refuses": python_refuses,
            }
        )

    results = page.evaluate(
        """(cases) => cases.map((c) => {
            const { applyDiff, displayItems, wordRuns, DiffError } = window.liveupdates.LiveDiff;
            const out = {};
            const got = applyDiff(c.old, c.diff);
            out.same = JSON.stringify(got) === JSON.stringify(Object.assign({}, c.old, c.new));
            try { applyDiff(c.other, c.diff); out.refused = false; }
            catch (e) { out.refused = e instanceof DiffError; }
            const items = displayItems(c.old.paragraphs, c.diff.paragraphs);
            out.shown = items.filter((i) => i.kind !== "removed").map((i) => i.text);
            out.removed = items.filter((i) => i.kind === "removed").length;
            out.runsOk = items.filter((i) => i.kind === "edited").every(
                (i) => i.runs.map((r) => r.new).join("") === i.text);
            const runs = wordRuns(c.old.title, c.new.title);
            out.titleOk = runs.map((r) => r.old).join("") === c.old.title
                && runs.map((r) => r.new).join("") === c.new.title;
            return out;
        })""",
        cases,
    )
    for case, result in zip(cases, results, strict=True):
        context = json.dumps(case["diff"])[:400]
        assert result["same"], f"JS apply differs from Python on {context}"
        assert result["refused"] == case["python_refuses"], context
        assert result["shown"] == case["new"]["paragraphs"], context
        assert result["runsOk"] and result["titleOk"], context


def test_page_refuses_malformed_diffs(browser_page: Page) -> None:
    page = browser_page
    page.set_content("<!doctype html><title>LiveDiff</title><body></body>")
    page.add_script_tag(path=str(STATIC / "app.js"))
    snapshot = {"id": "s", "feed": "f", "title": "T", "paragraphs": ["a", "b"], "version": 1}
    bad = [
        None,
        {},
        {"fields": {"paragraphs": {"old": [], "new": []}}},
        {"fields": {"title": {"old": "T"}}},
        {"fields": {"title": {"old": "X", "new": "Y"}}},
        {"fields": {}, "paragraphs": "nope"},
        {"fields": {}, "paragraphs": [{"op": "move"}]},
        {
            "fields": {},
            "paragraphs": [
                {"op": "delete", "old_start": 1, "old_end": 3, "new_start": 1, "new_end": 1}
                | {"old": ["b", "c"], "new": []}
            ],
        },
        {
            "fields": {},
            "paragraphs": [
                {"op": "replace", "old_start": 0, "old_end": 1, "new_start": 0, "new_end": 1}
                | {"old": ["not a"], "new": ["z"]}
            ],
        },
    ]
    refused = page.evaluate(
        """([snapshot, diffs]) => diffs.map((d) => {
            try { window.liveupdates.LiveDiff.applyDiff(snapshot, d); return false; }
            catch (e) { return e instanceof window.liveupdates.LiveDiff.DiffError; }
        })""",
        [snapshot, bad],
    )
    assert refused == [True] * len(bad)


# -- `liveupdates serve` end to end -------------------------------------------------------------


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`liveupdates serve` on a free port with a fast demo and its own data directory."""
    port = _free_port()
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nid = "demo"\nurl = "{self}/demo/feed.xml"\ninterval_seconds = 2\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    env.update(
        LIVEUPDATES_DATA_DIR=str(tmp_path / "data"),
        LIVEUPDATES_HUB_DEMO_STEP="1.5",
        LIVEUPDATES_FEEDS=str(feeds),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "liveupdates.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"liveupdates serve exited with {process.returncode}:\n{served.log_tail()}"
                )
            try:
                if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /healthz within {START_DEADLINE:.0f}s:\n{served.log_tail()}")
            time.sleep(0.2)  # polling a process we do not control; nothing to wait on instead
        yield served
    finally:
        _stop(process)


def _fresh_story_button(page: Page, exclude: set[str]) -> str:
    """Waits until the list leads with a story still being written (version 1 or 2); its id."""
    handle = page.wait_for_function(
        """(exclude) => {
            const button = document.querySelector(".story-button");
            if (!button || exclude.includes(button.dataset.storyId)) return null;
            const version = Number(button.dataset.version);
            return version >= 1 && version <= 2 ? button.dataset.storyId : null;
        }""",
        arg=sorted(exclude),
        timeout=UPDATE_TIMEOUT_MS,
    )
    return handle.json_value()


def _subscribes_sent(frames: list[str], channel: str) -> list[dict[str, Any]]:
    sent = []
    for frame in frames:
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        if message.get("type") == "subscribe" and message.get("channel") == channel:
            sent.append(message)
    return sent


def test_demo_page_shows_live_updates_and_resumes(served: Served, browser_page: Page) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The page runs under its Content-Security-Policy: anything it blocks is a console error.
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))

    response = page.goto(served.url + "/")
    assert (
        response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    )
    expect(page.get_by_role("heading", name="Stories")).to_be_visible()
    expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=15_000)

    # The list fills from the feed; open the story being written.
    first = _fresh_story_button(page, set())
    page.locator(f'.story-button[data-story-id="{first}"]').click()
    story = page.locator("#story")
    expect(story).to_have_attribute("data-story-id", first)
    expect(page.locator("#story-title")).not_to_be_empty()
    expect(page.locator("#story-body .para").first).to_be_visible()
    opened_version = int(story.get_attribute("data-version") or "0")

    # A live update arrives and is highlighted: a new paragraph, a new headline or changed words.
    changed = page.locator(
        "#story-body .para-inserted, #story-title.changed, #story-body .para-edited ins"
    )
    expect(changed.first).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    assert int(story.get_attribute("data-version") or "0") > opened_version
    expect(page.locator("#update-log li").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Drop the connection: the page reconnects and the feed channel keeps delivering stories.
    page.evaluate("window.liveupdates.drop()")
    expect(page.locator("#status")).to_have_attribute("data-connects", "2", timeout=15_000)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")

    # The next story appears through the resumed feed subscription; open it, drop again at once.
    second = _fresh_story_button(page, {first})
    page.locator(f'.story-button[data-story-id="{second}"]').click()
    expect(story).to_have_attribute("data-story-id", second)
    expect(page.locator("#story-title")).not_to_be_empty()
    version_at_drop = int(story.get_attribute("data-version") or "0")
    assert version_at_drop <= 2
    page.evaluate("window.liveupdates.drop()")
    expect(page.locator("#status")).to_have_attribute("data-connects", "3", timeout=15_000)

    # It resumed where it was: asked for what came after its position in this log...
    subscribes = _subscribes_sent(frames, f"story:{second}")
    assert len(subscribes) >= 2, subscribes
    resumed = subscribes[-1]
    assert isinstance(resumed.get("since"), int) and resumed.get("epoch"), resumed
    # ...and keeps updating to the story's last stage.
    expect(page.locator("#story-body")).to_contain_text(UPDATED_NOTE, timeout=UPDATE_TIMEOUT_MS)
    assert int(story.get_attribute("data-version") or "0") > version_at_drop
    page.screenshot(path=str(SCREENSHOT.with_name("demo-resumed.png")), full_page=True)

    assert not errors, errors
    assert served.process.poll() is None, served.log_tail()
