"""The reader page and the admin page as a reader and an operator meet them, in a real Chromium
against a real `liveupdates serve` process: every feed listed and live, any past update's diff
opened from the history, the phone wording, and the admin page without and with a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.adminservice import AdminService
from tests.support.feedserver import FeedServer
from tests.support.served import Served
from tests.support.stories import bridge_story, rss

UPDATE_TIMEOUT_MS = 30_000
WAIT_MS = 10_000


@pytest.fixture
def served_extra_feeds(feed_server: FeedServer) -> str:
    """A second feed next to the demo, on the loopback feed server."""
    feed_server.set("/harbour.xml", rss([bridge_story()]), etag=True)
    return (
        '[[feeds]]\nid = "harbour"\ntitle = "Harbour Town Gazette"\n'
        f'url = "{feed_server.url("/harbour.xml")}"\ninterval_seconds = 2\nadaptive = false\n'
    )


def test_home_page_lists_every_feed_live(
    served: Served, feed_server: FeedServer, browser_page: Page
) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/")

    harbour = page.locator('.feed-group[data-feed-id="harbour"]')
    demo = page.locator('.feed-group[data-feed-id="demo"]')
    expect(harbour.locator(".feed-title")).to_have_text("Harbour Town Gazette", timeout=WAIT_MS)
    expect(harbour.locator(".story-button")).to_contain_text(
        "Saltmarsh Bridge reopens", timeout=UPDATE_TIMEOUT_MS
    )
    expect(demo.locator(".feed-title")).to_have_text("Gullhaven Gazette (demo)")
    expect(demo.locator(".story-button").first).to_be_visible(timeout=UPDATE_TIMEOUT_MS)

    # A story published later appears at the top of its feed without a reload.
    later = bridge_story(guid="ferry-1", link="https://gazette.example/news/ferry").with_(
        title="Island ferry returns to its summer timetable"
    )
    feed_server.set("/harbour.xml", rss([later, bridge_story()]), etag=True)
    expect(harbour.locator(".story-button").first).to_contain_text(
        "Island ferry returns", timeout=UPDATE_TIMEOUT_MS
    )
    expect(harbour.locator(".story-button")).to_have_count(2)

    # The placeholder points where the list is: beside the story, or above it on a phone.
    expect(page.locator("#placeholder")).to_contain_text(
        "Choose a story on the left.", use_inner_text=True
    )
    page.set_viewport_size({"width": 390, "height": 800})
    expect(page.locator("#placeholder")).to_contain_text(
        "Choose a story above.", use_inner_text=True
    )
    expect(page.locator("#placeholder .wide-only")).to_be_hidden()
    assert not errors, errors


def test_history_opens_the_diff_of_a_past_update(served: Served, browser_page: Page) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/")

    # Wait for a demo story that has been through its first edits (a paragraph, the headline).
    handle = page.wait_for_function(
        """() => {
            for (const b of document.querySelectorAll('[data-feed-id="demo"] .story-button')) {
                if (Number(b.dataset.version) >= 3) return b.dataset.storyId;
            }
            return null;
        }""",
        timeout=UPDATE_TIMEOUT_MS,
    )
    story_id = handle.json_value()
    page.locator(f'.story-button[data-story-id="{story_id}"]').click()
    story = page.locator("#story")
    expect(story).to_have_attribute("data-story-id", story_id)

    # Updates from before the page was opened are in the history too. Polls and demo steps do
    # not line up exactly, so find the updates by what they did rather than by version number.
    entries = page.locator("#update-log .log-entry")
    # An update that only added a paragraph: a poll can also catch a paragraph and the headline
    # correction together, and that update is the headline's below.
    added = entries.filter(has_text="paragraph added").filter(has_not_text="Headline changed").last
    expect(added).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    added.click()
    version = added.get_attribute("data-version") or ""
    expect(page.locator("#past-banner")).to_be_visible()
    expect(page.locator("#past-summary")).to_contain_text(f"version {version}")
    expect(story).to_have_attribute("data-showing", version)
    expect(page.locator("#story-body .para-inserted").first).to_be_visible()
    expect(added).to_have_attribute("aria-current", "true")

    # The headline correction: its changed words are marked.
    headline = entries.filter(has_text="Headline changed").first
    expect(headline).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    headline.click()
    expect(story).to_have_attribute("data-showing", headline.get_attribute("data-version") or "")
    expect(page.locator("#story-title ins.word-ins")).to_have_count(1)
    expect(page.locator("#story-title del.word-del")).to_have_count(1)
    expect(added).not_to_have_attribute("aria-current", "true")

    # And back to the live story.
    page.locator("#back-to-latest").click()
    expect(page.locator("#past-banner")).to_be_hidden()
    latest = story.get_attribute("data-version")
    expect(story).to_have_attribute("data-showing", latest or "")
    assert not errors, errors


# -- the admin page ------------------------------------------------------------------------------


@pytest.fixture
def tokenless(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(tmp_path / "lu.sqlite3", admin_token=None) as svc:
        yield svc


def _admin_requests(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/v1/admin/" in r.url else None)
    return seen


def test_admin_page_without_a_token_says_how_to_enable_it_and_polls_nothing(
    tokenless: AdminService, browser_page: Page
) -> None:
    page = browser_page
    page.clock.install()
    seen = _admin_requests(page)
    page.goto(tokenless.url("/admin"))

    disabled = page.locator("#disabled")
    expect(disabled).to_be_visible(timeout=WAIT_MS)
    expect(disabled).to_contain_text("The admin API is disabled")
    expect(disabled).to_contain_text("LIVEUPDATES_ADMIN_TOKEN")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-polling", "off")
    asked = len(seen)
    assert asked == 1, seen

    # A minute of the page's own time passes: it asks nothing more.
    page.clock.run_for(60_000)
    assert len(seen) == asked, seen
    # Same look as the reader page: its stylesheet, its header.
    assert page.locator('link[href="/static/style.css"]').count() == 1
    header = page.locator("header.site-header")
    expect(header).to_be_visible()
    assert header.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(18, 38, 63)"


TOKEN = "page-test-token"


@pytest.fixture
def with_token(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(tmp_path / "lu.sqlite3", admin_token=TOKEN) as svc:
        yield svc


def _set_hidden(page: Page, hidden: bool) -> None:
    page.evaluate(
        """(hidden) => {
            Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def test_admin_page_stops_polling_while_the_tab_is_hidden(
    with_token: AdminService, browser_page: Page
) -> None:
    page = browser_page
    page.clock.install()
    seen = _admin_requests(page)
    page.goto(with_token.url("/admin"))
    page.fill("#token", TOKEN)
    page.click("#login button[type=submit]")
    expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)
    body = page.locator("body")
    expect(body).to_have_attribute("data-polling", "on")

    page.clock.run_for(10_000)
    expect(page.locator("#summary")).to_contain_text("0 feeds")
    polled = len(seen)

    _set_hidden(page, True)
    expect(body).to_have_attribute("data-polling", "off")
    before = len(seen)
    page.clock.run_for(60_000)
    assert len(seen) == before, seen[before:]
    assert before > 1 and polled > 1

    _set_hidden(page, False)
    expect(body).to_have_attribute("data-polling", "on")
    page.clock.run_for(5_000)
    httpx.get(with_token.url("/healthz"), timeout=5)  # the service is still there
    assert len(seen) > before
