"""The admin page (/admin) in a real headless Chromium against a real running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.adminservice import AdminService
from tests.support.feedserver import FeedServer
from tests.support.stories import bridge_story, rss

TOKEN = "page-test-token-0123"
WAIT_MS = 10_000


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(tmp_path / "lu.sqlite3", admin_token=TOKEN) as svc:
        yield svc


def api(service: AdminService, method: str, path: str, **kwargs: Any) -> Any:
    r = httpx.request(
        method, service.url("/v1/admin" + path), headers=service.auth, timeout=10, **kwargs
    )
    assert r.is_success, r.text
    return r.json()


def test_admin_page_lists_feeds_flags_failures_and_changes_them(
    service: AdminService, feed_server: FeedServer, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    feed_server.set("/gazette.xml", rss([bridge_story()]))
    feed_server.set("/broken.xml", b"gone", status=500)
    api(
        service,
        "POST",
        "/feeds",
        json={"url": feed_server.url("/gazette.xml"), "id": "gazette", "title": "Gazette"},
    )
    api(
        service,
        "POST",
        "/feeds",
        json={"url": feed_server.url("/broken.xml"), "id": "broken", "interval_seconds": 1},
    )

    blocked: list[str] = []
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    response = page.goto(service.url("/admin"))
    assert (
        response is not None
        and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    )
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()

    # A wrong token is refused and the page says so.
    page.fill("#token", "wrong")
    page.click("#login button[type=submit]")
    expect(page.locator("#message")).to_contain_text("refused", timeout=WAIT_MS)
    expect(page.locator("#login")).to_be_visible()

    page.fill("#token", TOKEN)
    page.click("#login button[type=submit]")
    expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)
    good = page.locator('tr[data-feed="gazette"]')
    bad = page.locator('tr[data-feed="broken"]')
    expect(good).to_be_visible(timeout=WAIT_MS)
    expect(good).to_contain_text("Gazette")

    # The failing feed stands out: its own class, a loud badge, the error text, another colour.
    expect(bad).to_have_class("failing", timeout=WAIT_MS)
    expect(bad.locator(".badge")).to_have_text("failing")
    expect(bad.locator(".error")).to_contain_text("500")
    # WebSub is off in this service (no public_url): the page says so for every feed.
    expect(good.locator(".websub")).to_have_text("WebSub: off")
    expect(good).to_have_class("ok", timeout=WAIT_MS)
    colour = "el => getComputedStyle(el).backgroundColor"
    assert bad.evaluate(colour) != good.evaluate(colour)
    expect(page.locator("#summary")).to_contain_text("1 failing")

    # The token survives a reload of the tab (sessionStorage).
    page.reload()
    expect(page.locator('tr[data-feed="gazette"]')).to_be_visible(timeout=WAIT_MS)

    # Pause one.
    good.locator("button.pause").click()
    expect(good).to_have_class("paused", timeout=WAIT_MS)
    expect(good.locator("button.resume")).to_be_visible()
    assert api(service, "GET", "/feeds/gazette")["paused"] is True

    # Change an interval.
    good.locator("input.every-input").fill("10s")
    good.locator("button.set").click()
    expect(page.locator("#message")).to_contain_text("every 10s", timeout=WAIT_MS)
    assert api(service, "GET", "/feeds/gazette")["interval_seconds"] == 10

    # Poll now.
    bad.locator("button.poll").click()
    expect(page.locator("#message")).to_contain_text("broken: error", timeout=WAIT_MS)

    # Add one.
    feed_server.set("/new.xml", rss([bridge_story(guid="new-1")]))
    page.fill("#add-url", feed_server.url("/new.xml"))
    page.fill("#add-id", "newcomer")
    page.fill("#add-every", "30s")
    page.click("#add button[type=submit]")
    new = page.locator('tr[data-feed="newcomer"]')
    expect(new).to_be_visible(timeout=WAIT_MS)
    expect(new.locator("input.every-input")).to_have_value("30s")
    assert api(service, "GET", "/feeds/newcomer")["interval_seconds"] == 30

    # A bad URL is refused with the API's message.
    page.fill("#add-url", "ftp://x.example/feed")
    page.evaluate("document.getElementById('add-url').type = 'text'")  # past the browser's check
    page.click("#add button[type=submit]")
    expect(page.locator("#message")).to_contain_text("http or https", timeout=WAIT_MS)

    # Remove one (after confirming).
    page.once("dialog", lambda dialog: dialog.accept())
    bad.locator("button.remove").click()
    expect(page.locator('tr[data-feed="broken"]')).to_have_count(0, timeout=WAIT_MS)
    assert {f["id"] for f in api(service, "GET", "/feeds")["feeds"]} == {"gazette", "newcomer"}

    # Readers and recent updates are shown.
    expect(page.locator("#clients")).to_have_text("0")
    expect(page.locator("#spark i")).to_have_count(15)
    audit = api(service, "GET", "/audit")["audit"]
    assert [a["action"] for a in audit][:4] == [
        "feed.delete",
        "feed.create",
        "feed.poll",
        "feed.update",
    ]
    assert not blocked, blocked  # nothing the page needs is refused by its CSP
