"""The story page's "Get real time updates on this device" in a real headless Chromium, against a
real `liveupdates serve`, as far as a browser without a push service allows: the button follows the
open story, says plainly that this browser cannot be notified while closed (headless Chromium has
no push service) and registers nothing; and the service worker turns a push message (delivered by
Chromium's DevTools protocol, as the push service would) into one notification per story."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

from tests.support.served import Served

UPDATE_TIMEOUT_MS = 30_000
WAIT_MS = 10_000


def _open_a_demo_story(page: Page, served: Served) -> str:
    page.goto(served.url + "/")
    button = page.locator('[data-feed-id="demo"] .story-button').first
    expect(button).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    story_id = button.get_attribute("data-story-id") or ""
    button.click()
    expect(page.locator("#story")).to_have_attribute("data-story-id", story_id)
    return story_id


def test_device_button_says_there_is_no_push_service_and_registers_nothing(
    served: Served, browser_page: Page
) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.context.grant_permissions(["notifications"], origin=served.url)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))

    notify = page.locator("#notify")
    expect(notify).to_be_hidden()  # nothing to follow before a story is open
    _open_a_demo_story(page, served)
    expect(notify).to_be_visible()
    expect(notify).to_have_text("Get real time updates on this device")
    notify.click()

    expect(page.locator("#device-status")).to_contain_text("no push service", timeout=WAIT_MS)
    expect(notify).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("localStorage.getItem('liveupdates.device')") is None
    # The page asked for the server's key, but never registered a device it could not reach.
    assert any(r.endswith("/v1/push/vapid-public-key") for r in requests), requests
    assert not any(r.startswith("POST ") and "/v1/devices" in r for r in requests), requests
    assert errors == []


def test_service_worker_shows_one_notification_per_story(
    served: Served, browser_page: Page
) -> None:
    page = browser_page
    page.context.grant_permissions(["notifications"], origin=served.url)
    cdp = page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: registrations.extend(e["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    page.goto(served.url + "/")
    page.evaluate(
        "async () => { await navigator.serviceWorker.register('/sw.js');"
        " await navigator.serviceWorker.ready; }"
    )
    page.wait_for_function("() => navigator.serviceWorker.ready.then(r => r.active !== null)")
    [registration] = [r for r in registrations if r["scopeURL"] == served.url + "/"][:1]

    def push(seq: int, title: str) -> None:
        message = {
            "type": "notification",
            "channel": "story:quay-story",
            "seq": seq,
            "epoch": "e1",
            "kind": "updated",
            "story": {"id": "quay-story", "title": title, "url": "https://example.org/quay"},
            "title": title,
            "body": f"{seq} new paragraphs",
            "updates": 1,
        }
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": served.url,
                "registrationId": registration["registrationId"],
                "data": json.dumps(message),
            },
        )

    shown = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
        .map(n => ({title: n.title, body: n.body, tag: n.tag, path: n.data.path}))"""
    push(1, "Quay wall repaired overnight")
    page.wait_for_function(f"({shown})().then(list => list.length === 1)", timeout=WAIT_MS)
    push(2, "Quay wall reopens to walkers")
    page.wait_for_function(
        f"({shown})().then(list => list.length === 1 && list[0].body === '2 new paragraphs')",
        timeout=WAIT_MS,
    )
    [notification] = page.evaluate(shown)
    assert notification == {
        "title": "Quay wall reopens to walkers",
        "body": "2 new paragraphs",
        "tag": "quay-story",
        "path": "/#story/quay-story",
    }
