"""One poll of one feed, end to end: fetch, parse, normalise, compare, store, publish.

This is the glue between the stages; each stage's logic lives in its own package. Every poll goes
through the process's scheduler (workers/poller.py), which calls `Ingestor.poll`, or
`Ingestor.ingest` for a body pushed to us (WebSub): both share everything after the fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from liveupdates import metrics
from liveupdates.events import channels_for, created_event, updated_event, utcnow_iso
from liveupdates.feeds.config import SELF_PLACEHOLDER, FeedError, resolve_url
from liveupdates.feeds.entries import EntriesRead, EntryMemo, read_entries
from liveupdates.feeds.fetch import Fetcher, FetchResult, next_fetch_state
from liveupdates.feeds.normalise import content_hash
from liveupdates.feeds.parse import ParsedFeed
from liveupdates.feeds.schedule import response_hint
from liveupdates.models import FeedConfig, FetchState, LogEntry, PollOutcome, Snapshot
from liveupdates.store.base import Store, VersionConflict

Publish = Callable[[list[LogEntry]], Awaitable[None]]
# (feed, final URL, response headers, parsed feed) after a fetch that parsed (WebSub discovery)
OnFetched = Callable[[FeedConfig, str, Mapping[str, str], ParsedFeed], None]

log = logging.getLogger("liveupdates.ingest")

# How many earlier versions a returning text is compared with when damping flip-flops.
FLIPFLOP_DEPTH = 3


@dataclass(slots=True)
class PollReport:
    outcome: PollOutcome
    events: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None
    damped: int = 0  # changes ignored as flip-flops
    hint: float | None = None  # seconds the feed says it stays fresh (ttl, max-age)
    consecutive_errors: int = 0  # the feed's count after this poll, as stored
    reused: int = 0  # entries unchanged since the feed's last body: not parsed nor read again


# Feeds whose entries an Ingestor remembers (EntryMemo), least recently read dropped first. Only
# a body (a 200 or a push) touches it, not a 304; it holds about the text of those feeds.
MEMO_FEEDS = 1024


# A 304 that changes nothing (same validators, no error streak ended) is written to the store at
# most this often per feed: it would only move the "last poll" time in the feed's health, and the
# write was most of what a 304 cost beyond its GET. The metrics count every poll.
QUIET_RECORD_SECONDS = 60.0


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
        on_fetched: OnFetched | None = None,
    ) -> None:
        self.store = store
        # Called after each fetch that parsed (not for pushed bodies); must not block.
        self.on_fetched = on_fetched
        self.fetcher = fetcher
        self.publish = publish
        self.flipflop_window = flipflop_window
        self.self_url = self_url
        self._memos: OrderedDict[str, EntryMemo] = OrderedDict()
        self._quiet: dict[str, float] = {}  # feed -> when its last unchanged 304 was recorded

    async def poll(self, feed: FeedConfig) -> PollReport:
        started = time.monotonic()
        state = await self.store.get_fetch_state(feed.id)
        try:
            url = resolve_url(feed.url, self.self_url)
        except FeedError as exc:
            failed = replace(state, consecutive_errors=state.consecutive_errors + 1)
            return await self._finish(
                feed,
                started,
                "error",
                error=str(exc),
                state=failed,
                errors=failed.consecutive_errors,
            )
        # A `{self}` feed is the service's own (the demo): its address is ops' choice, not a feed's.
        own = self.self_url if feed.url.startswith(SELF_PLACEHOLDER) else None
        result = await self.fetcher.fetch(url, state, exempt_origin=own)
        new_state = next_fetch_state(state, result, now=time.time())
        got = await self._read(feed, result, url)
        return await self._store(
            feed, started, state, new_state, result, url, got, on_read=self.on_fetched
        )

    async def ingest(self, feed: FeedConfig, body: bytes, headers: Mapping[str, str]) -> PollReport:
        """A body of the feed that came without a fetch (a WebSub push): everything a poll does
        after its fetch. The feed's validators and Retry-After hold stay as they are (they
        belong to its URL's responses); a readable body ends an error streak, as a poll would."""
        started = time.monotonic()
        try:
            url = resolve_url(feed.url, self.self_url)
        except FeedError:
            url = feed.url  # only the base for relative links in the body
        result = FetchResult(status="ok", url=url, body=body, headers=dict(headers))
        # The fetch state is read while the body is parsed (the parse does not need it), so a
        # push waits for one of the two, not both. The caller holds the feed's claim for both.
        state, got = await asyncio.gather(
            self.store.get_fetch_state(feed.id), self._read(feed, result, url)
        )
        new_state = replace(state, consecutive_errors=0)
        return await self._store(feed, started, state, new_state, result, url, got)

    async def _read(self, feed: FeedConfig, result: FetchResult, url: str) -> EntriesRead | None:
        """Parse and normalise the body a fetch (or push) brought, in a worker thread; None
        without a body."""
        if result.status != "ok" or result.body is None:
            return None
        got = await asyncio.to_thread(
            read_entries,
            result.body,
            result.headers,
            result.url or url,
            feed.id,
            self._memos.get(feed.id),
        )
        self._remember(feed.id, got.memo)
        return got

    async def _store(
        self,
        feed: FeedConfig,
        started: float,
        state: FetchState,
        new_state: FetchState,
        result: FetchResult,
        url: str,
        got: EntriesRead | None,
        *,
        on_read: OnFetched | None = None,
    ) -> PollReport:
        """Match, compare, store and publish what `_read` made of a fetch (or push).
        `on_read` sees the parsed feed first when it parsed."""
        parsed = None
        read: list[tuple[Snapshot, str]] = []
        total = reused = 0
        if got is not None:
            parsed, read, total, reused = got.parsed, got.read, got.total, got.reused
            if not parsed.error and on_read is not None:
                on_read(feed, result.url or url, result.headers, parsed)
            if parsed.error:
                # Forget the validators: a 304 next time would hide that the feed is still broken.
                new_state = replace(
                    new_state,
                    etag=None,
                    last_modified=None,
                    consecutive_errors=state.consecutive_errors + 1,
                )
        # The fetch state is written with the poll's outcome, once the entries are stored (and
        # not at all when nothing changed, as on most 304s): a poll that fails half-way keeps the
        # old validators, so the next poll fetches the change again instead of a 304 hiding it.
        changed_state = new_state if new_state != state else None
        hint = response_hint(result.headers, result.body) if result.status != "error" else None
        if parsed is None or parsed.error:
            report = await self._finish(
                feed,
                started,
                "error" if parsed is not None else result.status,
                http_status=result.http_status,
                error=parsed.error if parsed is not None else result.error,
                retry_after=result.retry_after_seconds,
                state=changed_state,
                errors=new_state.consecutive_errors,
            )
            report.hint = hint
            return report
        report_events: list[dict[str, Any]] = []
        damped = 0
        # One read for the whole feed: entries whose text the store already has as their story's
        # latest version (most of them, on most polls) need no identity lookup and no compare.
        stored = await self.store.latest_hashes(feed.id, [s.id for s, _ in read]) if read else {}
        touched: set[str] = set()  # stories written in this poll: `stored` is stale for them
        for snapshot, digest in read:
            if snapshot.id not in touched and stored.get(snapshot.id) == digest:
                continue
            entries, was_damped, story = await self._ingest(snapshot, digest)
            touched.update((snapshot.id, story))
            damped += was_damped
            # Each event goes to several channels; report it once.
            report_events.extend(e.event for e in entries if e.channel.startswith("story:"))
        report = await self._finish(
            feed,
            started,
            "ok",
            http_status=result.http_status,
            entries=total,
            events=len(report_events),
            state=changed_state,
            errors=new_state.consecutive_errors,
        )
        report.events = report_events
        report.damped = damped
        report.hint = hint
        report.reused = reused
        return report

    def _remember(self, feed_id: str, memo: EntryMemo | None) -> None:
        if memo is None:
            self._memos.pop(feed_id, None)
            return
        self._memos[feed_id] = memo
        self._memos.move_to_end(feed_id)
        while len(self._memos) > MEMO_FEEDS:
            self._memos.popitem(last=False)

    async def _ingest(
        self, snapshot: Snapshot, digest: str | None
    ) -> tuple[list[LogEntry], bool, str]:
        """Store `snapshot` if a reader would see a difference.

        Returns (entries, damped, id of the story the snapshot was matched to). `digest` is the
        snapshot's content_hash, when the caller has it already."""
        # Identity, latest version and the flip-flop check's hashes in one store read.
        context = await self.store.story_context(
            snapshot.feed, snapshot.guid, snapshot.url, snapshot.id, FLIPFLOP_DEPTH
        )
        if context.story_id != snapshot.id:
            # The feed rewrote the guid or the link: it is still the story we know.
            snapshot = replace(snapshot, id=context.story_id)
        if digest is None:
            digest = content_hash(snapshot)  # the id is not part of the hash
        latest = context.latest
        if latest is not None and latest.content_hash == digest:
            return [], False, snapshot.id
        if latest is not None and self._is_flipflop(digest, latest.at, context.earlier):
            return [], True, snapshot.id
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
            return [], False, snapshot.id
        metrics.updates_published(sum(1 for e in entries if e.channel.startswith("story:")))
        log.info(
            "story %s of feed %s: version %d (%s)",
            snapshot.id,
            snapshot.feed,
            expected + 1,
            event["kind"],
            extra={"feed": snapshot.feed, "story": snapshot.id},
        )
        if self.publish is not None and entries:
            await self.publish(entries)
        return entries, False, snapshot.id

    def _is_flipflop(self, digest: str, latest_at: str, earlier: tuple[str, ...]) -> bool:
        """A return to an earlier text soon after a change is cache churn, not news.

        Caches or load-balanced origins out of step serve A, B, A, B... Within `flipflop_window`
        seconds of the latest version, a text equal to one of the few versions before it
        (`earlier`, their content hashes) is ignored; after the window the return is accepted as
        a real (reverted) change.
        """
        if self.flipflop_window <= 0:
            return False
        if time.time() - _parse_iso(latest_at) > self.flipflop_window:
            return False
        return digest in earlier

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
        state: FetchState | None,
        errors: int,
    ) -> PollReport:
        """Record the outcome, and `state` (the feed's new fetch state) with it if given.

        `errors` is the feed's consecutive error count after this poll, passed even when `state`
        is None (unchanged, so not written) because the scheduler plans the next poll from it."""
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
        if self._worth_recording(outcome, state):
            await self.store.record_poll(outcome, state)
        metrics.observe_poll(outcome.status, outcome.duration_ms / 1000)
        if outcome.status == "error":
            log.warning(
                "poll of feed %s failed: %s",
                feed.id,
                error or f"HTTP {http_status}",
                extra={"feed": feed.id},
            )
        return PollReport(outcome=outcome, retry_after=retry_after, consecutive_errors=errors)

    def forget(self, feed_id: str) -> None:
        """The feed is no longer polled here (removed, paused): drop its 304 record time, so the
        map stays as large as the polled feeds (its entry memo ages out of the LRU on its own)."""
        self._quiet.pop(feed_id, None)

    def _worth_recording(self, outcome: PollOutcome, state: FetchState | None) -> bool:
        if outcome.status != "not_modified" or state is not None:
            self._quiet.pop(outcome.feed_id, None)
            return True
        now = time.monotonic()
        last = self._quiet.get(outcome.feed_id)
        if last is not None and now - last < QUIET_RECORD_SECONDS:
            return False
        self._quiet[outcome.feed_id] = now
        return True
