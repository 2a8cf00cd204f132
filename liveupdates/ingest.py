"""One poll of one feed, end to end: fetch, parse, normalise, compare, store, publish.

This is the glue between the stages; each stage's logic lives in its own package. Both the CLI's
`liveupdates poll` and the scheduled workers call `Ingestor.poll`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from liveupdates import metrics
from liveupdates.events import channels_for, created_event, updated_event, utcnow_iso
from liveupdates.feeds.fetch import Fetcher, next_fetch_state
from liveupdates.feeds.normalise import content_hash, normalise_entry
from liveupdates.feeds.parse import parse_feed
from liveupdates.feeds.schedule import response_hint
from liveupdates.models import FeedConfig, LogEntry, PollOutcome, Snapshot
from liveupdates.store.base import Store, VersionConflict

Publish = Callable[[list[LogEntry]], Awaitable[None]]

# How many earlier versions a returning text is compared with when damping flip-flops.
FLIPFLOP_DEPTH = 3


@dataclass(slots=True)
class PollReport:
    outcome: PollOutcome
    events: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None
    damped: int = 0  # changes ignored as flip-flops
    hint: float | None = None  # seconds the feed says it stays fresh (ttl, max-age)


def _parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


class Ingestor:
    """Polls feeds into a store and hands every new log entry to `publish`."""

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        *,
        publish: Publish | None = None,
        flipflop_window: float = 600.0,
        self_url: str | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.publish = publish
        self.flipflop_window = flipflop_window
        self.self_url = self_url

    async def poll(self, feed: FeedConfig) -> PollReport:
        from liveupdates.feeds.config import FeedError, resolve_url

        started = time.monotonic()
        state = await self.store.get_fetch_state(feed.id)
        try:
            url = resolve_url(feed.url, self.self_url)
        except FeedError as exc:
            await self.store.set_fetch_state(
                feed.id, replace(state, consecutive_errors=state.consecutive_errors + 1)
            )
            return await self._finish(feed, started, "error", error=str(exc))
        result = await self.fetcher.fetch(url, state)
        new_state = next_fetch_state(state, result, now=time.time())
        parsed = None
        if result.status == "ok" and result.body is not None:
            parsed = parse_feed(result.body, result.headers, result.url or url)
            if parsed.error:
                # Forget the validators: a 304 next time would hide that the feed is still broken.
                new_state = replace(
                    new_state,
                    etag=None,
                    last_modified=None,
                    consecutive_errors=state.consecutive_errors + 1,
                )
        await self.store.set_fetch_state(feed.id, new_state)
        hint = response_hint(result.headers, result.body) if result.status != "error" else None
        if parsed is None or parsed.error:
            report = await self._finish(
                feed,
                started,
                "error" if parsed is not None else result.status,
                http_status=result.http_status,
                error=parsed.error if parsed is not None else result.error,
                retry_after=result.retry_after_seconds,
            )
            report.hint = hint
            return report
        report_events: list[dict[str, Any]] = []
        damped = 0
        snapshots = [s for s in (normalise_entry(e, feed.id) for e in parsed.entries) if s]
        for snapshot in snapshots:
            entries, was_damped = await self.ingest(snapshot)
            damped += was_damped
            # Each event goes to several channels; report it once.
            report_events.extend(e.event for e in entries if e.channel.startswith("story:"))
        report = await self._finish(
            feed,
            started,
            "ok",
            http_status=result.http_status,
            entries=len(parsed.entries),
            events=len(report_events),
        )
        report.events = report_events
        report.damped = damped
        report.hint = hint
        return report

    async def ingest(self, snapshot: Snapshot) -> tuple[list[LogEntry], bool]:
        """Store `snapshot` if a reader would see a difference. Returns (entries, damped)."""
        known = await self.store.find_story_id(snapshot.feed, snapshot.guid, snapshot.url)
        if known and known != snapshot.id:
            # The feed rewrote the guid or the link: it is still the story we know.
            snapshot = replace(snapshot, id=known)
        digest = content_hash(snapshot)
        latest = await self.store.latest(snapshot.id)
        if latest is not None and latest.content_hash == digest:
            return [], False
        if latest is not None and await self._is_flipflop(snapshot.id, digest, latest.at):
            return [], True
        if latest is None:
            event = created_event(snapshot)
            expected = 0
        else:
            event = updated_event(latest.snapshot, snapshot, latest.version)
            expected = latest.version
        try:
            entries = await self.store.append_version(
                snapshot, digest, expected, [event], channels_for(snapshot)
            )
        except VersionConflict:
            # Another poller stored this change first; it has published it too.
            return [], False
        metrics.updates_published(sum(1 for e in entries if e.channel.startswith("story:")))
        if self.publish is not None and entries:
            await self.publish(entries)
        return entries, False

    async def _is_flipflop(self, story_id: str, digest: str, latest_at: str) -> bool:
        """A return to an earlier text soon after a change is cache churn, not news.

        Caches or load-balanced origins out of step serve A, B, A, B... Within `flipflop_window`
        seconds of the latest version, a text equal to one of the few versions before it is
        ignored; after the window the return is accepted as a real (reverted) change.
        """
        if self.flipflop_window <= 0:
            return False
        if time.time() - _parse_iso(latest_at) > self.flipflop_window:
            return False
        earlier = await self.store.recent_versions(story_id, FLIPFLOP_DEPTH + 1)
        return any(v.content_hash == digest for v in earlier[1:])

    async def _finish(
        self,
        feed: FeedConfig,
        started: float,
        status: Any,
        *,
        http_status: int | None = None,
        error: str | None = None,
        entries: int = 0,
        events: int = 0,
        retry_after: float | None = None,
    ) -> PollReport:
        outcome = PollOutcome(
            feed_id=feed.id,
            at=utcnow_iso(),
            status=status,
            http_status=http_status,
            error=error,
            entries=entries,
            events=events,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        await self.store.record_poll(outcome)
        metrics.observe_poll(outcome.status, outcome.duration_ms / 1000)
        return PollReport(outcome=outcome, retry_after=retry_after)


async def poll_all(ingestor: Ingestor, feeds: Sequence[FeedConfig]) -> list[PollReport]:
    """Poll each feed once, one after the other (the CLI's use)."""
    return [await ingestor.poll(feed) for feed in feeds]
