"""HTTP routes of the built-in demo feed: the RSS the poller reads and a page per story.

The demo's clock starts when the routes are made, so every `liveupdates serve` shows a fresh
story being written from its first version.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from liveupdates.demo.story import (
    FEED_TITLE,
    STAGES_PER_STORY,
    demo_feed_xml,
    stage_at,
    story_at,
    story_number,
)

RSS_TYPE = "application/rss+xml; charset=utf-8"

# Highest ?stage= accepted: far beyond any demo run, and small enough to keep numbers sane.
MAX_STAGE = 10_000_000


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match semantics: weak comparison, a list of tags, or "*"."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _pinned_stage(request: Request) -> int | None:
    raw = request.query_params.get("stage")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > MAX_STAGE:
        raise ValueError(raw)
    return int(raw)


def _story_page(title: str, author: str, paragraphs: tuple[str, ...]) -> str:
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - {escape(FEED_TITLE)}</title>"
        '<link rel="stylesheet" href="/static/style.css"></head>\n'
        '<body><main class="article-page">'
        f'<p><a href="/">{escape(FEED_TITLE)}</a></p>'
        f'<h1>{escape(title)}</h1><p class="byline">By {escape(author)}</p>\n'
        f"{body}\n</main></body></html>\n"
    )


def demo_routes(step_seconds: float = 8.0) -> list[BaseRoute]:
    """Routes for GET /demo/feed.xml and GET /demo/stories/{slug}; the clock starts now."""
    # Validates step_seconds once, here, rather than on every request.
    stage_at(0.0, step_seconds)
    started = time.monotonic()
    started_wall = datetime.now(UTC).replace(microsecond=0)
    # Ties guids and links to this run so a restart on the same data directory starts new stories.
    run = format(int(started_wall.timestamp()), "x")

    def current_stage() -> int:
        return stage_at(time.monotonic() - started, step_seconds)

    def stage_began(stage: int) -> datetime:
        # From the wall clock at start plus whole steps, so the feed's dates never jitter.
        return started_wall + timedelta(seconds=stage * step_seconds)

    async def feed(request: Request) -> Response:
        try:
            pinned = _pinned_stage(request)
        except ValueError:
            return Response(
                "stage must be a whole number >= 0\n", status_code=400, media_type="text/plain"
            )
        stage = current_stage() if pinned is None else pinned
        body = demo_feed_xml(
            stage,
            base_url=str(request.base_url),
            now=stage_began(stage),
            step_seconds=step_seconds,
            run=run,
        ).encode("utf-8")
        etag = _etag(body)
        # no-cache: caches may keep it but must revalidate, which is what the poller does anyway.
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, headers={**headers, "Content-Type": RSS_TYPE})

    async def story_page(request: Request) -> Response:
        slug = request.path_params["slug"]
        number = story_number(slug)
        stage = current_stage()
        current = stage // STAGES_PER_STORY
        if number is None or number > current:
            return HTMLResponse("<!doctype html><title>Not found</title>No such story.\n", 404)
        own_stage = stage % STAGES_PER_STORY if number == current else STAGES_PER_STORY - 1
        story = story_at(number, own_stage, run=run)
        if story.slug != slug:
            return HTMLResponse("<!doctype html><title>Not found</title>No such story.\n", 404)
        return HTMLResponse(_story_page(story.title, story.author, story.paragraphs))

    return [
        Route("/demo/feed.xml", feed, methods=["GET"], name="demo_feed"),
        Route("/demo/stories/{slug}", story_page, methods=["GET"], name="demo_story"),
    ]
