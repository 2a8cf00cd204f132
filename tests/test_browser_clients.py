"""docs/clients/browser.js, the documented browser client, run as a reader's page would run it:
in Chromium, same origin as a live `liveupdates serve`, receiving updates and resuming after a
dropped connection without a gap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route

from tests.support.served import Served

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "clients" / "browser.js"
UPDATE_TIMEOUT_MS = 30_000

# The test's module: imports the example as a page would and keeps what it reports for the test.
HARNESS = """import { followChannel, followStory, followWithEventSource } from "./browser.js";
const seen = { feed: [], statuses: [], story: [], sse: [] };
window.seen = seen;
window.feed = followChannel(location.origin, "feed:demo", {
  onUpdate: (m) => seen.feed.push(m.seq),
  onReset: (m) => seen.feed.push("reset"),
  onStatus: (s) => seen.statuses.push(s),
});
window.startStory = (id) => {
  window.story = followStory(location.origin, id, {
    onSnapshot: (snapshot, diff) => seen.story.push({ version: snapshot.version, diff: !!diff,
                                                     title: snapshot.title }),
  });
};
followWithEventSource(location.origin, "feed:demo", (m) => seen.sse.push(m.type));
"""


def _load_example(page: Page, served: Served) -> None:
    """Runs the example in a page of the live server's origin, as a same-origin module script.

    Only the two scripts are answered by the browser's request routing: a document answered that
    way cannot open WebSockets in Chromium, so the page itself is one the server serves."""

    def fulfil(route: Route) -> None:
        if route.request.url.endswith("/browser.js"):
            route.fulfill(path=str(EXAMPLE), content_type="text/javascript")
        else:
            route.fulfill(body=HARNESS, content_type="text/javascript")

    page.route(f"{served.url}/example/**", fulfil)
    page.goto(f"{served.url}/healthz")
    page.add_script_tag(url=f"{served.url}/example/harness.js", type="module")


def _subscribes(frames: list[str]) -> list[dict[str, Any]]:
    found = []
    for frame in frames:
        message = json.loads(frame)
        if message.get("type") == "subscribe" and message.get("channel") == "feed:demo":
            found.append(message)
    return found


def test_browser_example_receives_updates_and_resumes(served: Served, browser_page: Page) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    _load_example(page, served)

    # Live updates of the demo feed arrive, over WebSocket and over SSE.
    page.wait_for_function(
        "() => window.seen && window.seen.feed.length >= 2", timeout=UPDATE_TIMEOUT_MS
    )
    page.wait_for_function("() => window.seen.sse.includes('update')", timeout=UPDATE_TIMEOUT_MS)
    before = page.evaluate("window.seen.feed.length")

    # Drop the connection: it reconnects, resumes from its position and misses nothing.
    page.evaluate("window.feed.drop()")
    page.wait_for_function(
        f"() => window.seen.feed.length >= {before + 2}", timeout=UPDATE_TIMEOUT_MS
    )
    seqs = page.evaluate("window.seen.feed")
    assert "reset" not in seqs, seqs
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"a gap or a repeat: {seqs}"
    assert "reconnecting" in page.evaluate("window.seen.statuses")
    resumed = _subscribes(frames)[-1]
    assert isinstance(resumed.get("since"), int) and resumed.get("epoch"), resumed

    # Following one story: it loads, then applies each diff to reach the next version.
    story_id = page.evaluate(
        "fetch('/v1/feeds/demo/stories?limit=1').then((r) => r.json()).then((d) => d.stories[0].id)"
    )
    page.evaluate("(id) => window.startStory(id)", story_id)
    page.wait_for_function("() => window.seen.story.some((s) => s.diff)", timeout=UPDATE_TIMEOUT_MS)
    story = page.evaluate("window.seen.story")
    versions = [s["version"] for s in story]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), story
    applied = page.evaluate("window.story.snapshot()")
    latest = page.evaluate(
        f"fetch('/v1/stories/{story_id}/versions/{applied['version']}').then((r) => r.json())"
    )
    assert applied["paragraphs"] == latest["paragraphs"] and applied["title"] == latest["title"]
    assert not errors, errors
