"""The /docs reference page in a real Chromium against a real `liveupdates serve`: both documents
rendered, nothing fetched from anywhere but the service itself (it works offline), no script
errors under the page's Content-Security-Policy."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.served import Served

WAIT_MS = 15_000


def test_docs_page_renders_both_documents_offline(served: Served, browser_page: Page) -> None:
    page = browser_page
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    def only_this_origin(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if request.url.startswith(served.url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            foreign.append(request.url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_this_origin)
    page.goto(served.url + "/docs")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)

    # REST: an operation with its parameters, responses and example; the table of contents.
    updates = page.locator("#op-get-v1-stories-story-id-updates")
    expect(updates.locator("h4")).to_contain_text("GET")
    expect(updates.locator("h4")).to_contain_text("/v1/stories/{story_id}/updates")
    expect(updates.locator("table.params")).to_contain_text("since")
    expect(updates.locator("dl.responses dt").first).to_have_text("200")
    expect(updates.locator("dl.responses")).to_contain_text("recovered")
    expect(page.locator("#toc")).to_contain_text("POST /v1/devices")
    expect(page.locator("#op-put-v1-devices-device-id-subscriptions-channel")).to_contain_text(
        "Bearer"
    )
    # Streams: each message with its direction, fields and example.
    subscribe = page.locator("#msg-subscribe")
    expect(subscribe).to_contain_text("client → server")
    expect(subscribe.locator(".props")).to_contain_text("since")
    expect(page.locator("#msg-update")).to_contain_text("server → client")
    expect(page.locator("#channels")).to_contain_text("/v1/ws")
    expect(page.locator("#status")).to_contain_text("OpenAPI 3.1.0")

    # A link in the contents leads to its section.
    page.locator("#toc a", has_text="GET /v1/feeds").first.click()
    expect(page.locator("#op-get-v1-feeds")).to_be_in_viewport()
    assert not foreign, foreign
    assert not errors, errors
