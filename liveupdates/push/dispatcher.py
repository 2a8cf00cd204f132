"""The push dispatcher: from the channel logs to the devices that follow them.

Two loops, both on the store only (never on the hub's connections or the poller's loop, so a slow
push service delays nothing but its own sends):

- **scan**: for every followed channel, read the log after the channel's durable cursor (the same
  gapless logs the hub replays), turn a batch of events into `Change`s, and merge them into the
  coalescing state of every follower that wants them, a page of followers at a time (one read
  and one write per page for the whole batch). The cursor moves past the batch only once every
  page is merged; merging is idempotent (a state remembers the highest story version it holds),
  so a dispatcher killed at any point and restarted reads the batch again and loses nothing.
  One process at a time reads a channel (a claim in the store, extended as it goes).
- **send**: take the states that are due (leased in the store, so with several `push`
  processes each is sent by one of them) with their devices (one read per take), build one
  notification per (device, story), send it through the device's provider and record the
  answer: sent (the gap starts), gone (device removed), retry (after Retry-After or a backoff,
  a bounded number of times, then failed), too large (the body is shortened and sent again).

A send in flight when the process is killed is sent again after its lease: the only repeat
possible, and it carries the same collapse key, so the device still shows one notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from liveupdates.backends.availability import error_reason
from liveupdates.models import Device, Platform
from liveupdates.push import coalesce
from liveupdates.push.model import Notification, Provider, SendResult
from liveupdates.push.rules import Change, change_from_event, wants
from liveupdates.settings import Settings
from liveupdates.store.base import ChannelLogs
from liveupdates.store.batch import Batcher
from liveupdates.store.devices import Cursor, DeviceRecord, DeviceStore, State, StateKey

log = logging.getLogger("liveupdates.push")

FOLLOWER_PAGE = 500
LOG_BATCH = 100
CHANNEL_LEASE = 30.0  # a channel's claim; extended after every page of followers
SEND_LEASE = 60.0  # a taken state is handed out again after this (its sender died)
EXPIRE_EVERY = 3600.0
TOO_LARGE_TRIES = 4
# Store calls of deliveries at once (a Redis client's pool holds 100 connections).
STORE_SLOTS = 32
# A delivery marks its device as seen (for push.device_ttl_days) at most this often: a device
# that receives a breaking story costs no extra write per notification.
TOUCH_EVERY = 6 * 3600.0


@dataclass
class DispatchStats:
    """What this process did (the store's counters hold every process's)."""

    entries: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)


Observer = Callable[[str, str, int], None]  # (provider, outcome, how many): for Prometheus
# A successful send waiting to be recorded: (key, the state taken, platform, device seen at).
Sent = tuple[StateKey, State, str, float]


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        logs: ChannelLogs,
        devices: DeviceStore,
        providers: Mapping[Platform, Provider],
        *,
        clock: Callable[[], float] = time.time,
        observe: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.logs = logs
        self.devices = devices
        self.providers = dict(providers)
        self.clock = clock
        self.observe = observe
        self.owner = secrets.token_hex(8)
        self.stats = DispatchStats()
        self._wake = asyncio.Event()
        self._slots = {p: asyncio.Semaphore(settings.push_concurrency) for p in self.providers}
        self._store_slots = asyncio.Semaphore(STORE_SLOTS)
        self._inflight: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()  # set when a send in flight ends
        # Sends that succeeded, recorded together (group commit: one store transaction for the
        # batch instead of three per send).
        # Any failure is the store's (there is no bad item to single out): it fails the batch,
        # and the leases bring its states back.
        self._sent: Batcher[Sent, None] = Batcher(self._write_sent, outage=(Exception,))

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Scan and send until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._scan_forever())
            tg.create_task(self._send_forever())

    async def _scan_forever(self) -> None:
        next_expiry = 0.0
        while True:
            try:
                if self.clock() >= next_expiry:
                    await self.expire()
                    next_expiry = self.clock() + EXPIRE_EVERY
                if await self.scan_once():
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: try again next round
                log.warning("push scan failed: %s: %s", type(exc).__name__, str(exc)[:200])
            await asyncio.sleep(self.settings.push_scan_interval)

    async def _send_forever(self) -> None:
        while True:
            try:
                if await self.send_once():
                    continue  # more may be due already: take them as slots free up
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("push send failed: %s: %s", type(exc).__name__, str(exc)[:200])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.push_scan_interval)

    async def aclose(self) -> None:
        for task in tuple(self._inflight):
            task.cancel()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()

    async def expire(self) -> int:
        ttl = self.settings.push_device_ttl_days * 86400
        removed = await self.devices.expire(self.clock() - ttl)
        if removed:
            log.info("push: forgot %d devices not seen for %g days", removed, ttl / 86400)
        return removed

    # -- scan: logs -> coalescing states ----------------------------------------------------------

    async def scan_once(self) -> int:
        """Merge every new event of every followed channel; how many events were read."""
        done = 0
        for channel in await self.devices.channels():
            done += await self.scan_channel(channel)
        self.stats.entries += done
        return done

    async def scan_channel(self, channel: str) -> int:
        bounds = await self.logs.log_bounds(channel)
        cursor = await self.devices.get_cursor(channel)
        if cursor is None:
            await self.devices.init_cursor(channel, Cursor(bounds.epoch, bounds.last))
            return 0
        if cursor.epoch == bounds.epoch and cursor.seq >= bounds.last:
            return 0
        if not await self.devices.claim_channel(channel, self.owner, CHANNEL_LEASE):
            return 0  # another process reads it now
        done = 0
        try:
            cursor = await self.devices.get_cursor(channel) or cursor
            if cursor.epoch != bounds.epoch:
                # The log was lost and restarted: its seqs mean something new. Everything in
                # the new log is news.
                log.warning(
                    "push: %s log restarted (new epoch); reading it from its start",
                    channel,
                    extra={"channel": channel},
                )
                cursor = Cursor(bounds.epoch, max(0, bounds.first - 1))
                await self.devices.set_cursor(channel, cursor)
            while cursor.seq < bounds.last:
                entries = await self.logs.read_log(channel, cursor.seq, LOG_BATCH)
                if not entries:
                    break
                if entries[0].seq != cursor.seq + 1:
                    log.warning(
                        "push: %s entries %d-%d were trimmed from the log before they were read",
                        channel,
                        cursor.seq + 1,
                        entries[0].seq - 1,
                        extra={"channel": channel},
                    )
                changes = [
                    change
                    for entry in entries
                    if (change := change_from_event(channel, entry.seq, bounds.epoch, entry.event))
                    is not None
                ]
                if changes:
                    await self._fan_out(channel, changes)
                # The cursor moves once per batch: a restart reads the batch again, and merging
                # what was merged already changes nothing.
                cursor = Cursor(bounds.epoch, entries[-1].seq)
                await self.devices.set_cursor(channel, cursor)
                done += len(entries)
        finally:
            await self.devices.release_channel(channel, self.owner)
        return done

    async def _fan_out(self, channel: str, changes: list[Change]) -> None:
        """Merge a batch of the channel's changes into its followers' states: each page of
        followers is read once and written in one store call for the whole batch."""
        after: str | None = None
        gap = self.settings.push_min_gap
        while True:
            page = await self.devices.followers(channel, after, FOLLOWER_PAGE)
            wanted: dict[StateKey, list[Change]] = {}
            for follower in page.followers:
                for change in changes:
                    if wants(follower.notify, change):
                        key = (follower.device_id, change.story_id)
                        wanted.setdefault(key, []).append(change)
            if wanted:
                await self.devices.update_states(
                    list(wanted), partial(_merge, changes=wanted, now=self.clock(), gap=gap)
                )
            if page.next_after is None:
                return
            after = page.next_after
            await self.devices.claim_channel(channel, self.owner, CHANNEL_LEASE)

    # -- send: coalescing states -> providers ------------------------------------------------------

    async def send_once(self) -> int:
        """Start sends for what is due, as many as there are free slots (waiting for half of
        them to be free); how many were started. Sends run on: `drain` waits for them."""
        # Each provider has its own `push_concurrency` slots, so a slow one delays only its sends.
        cap = self.settings.push_concurrency * max(1, len(self.providers))
        # Taking is a store write and reading the devices a store read: taking for half the
        # slots at once rather than for each one freed keeps those calls few and large.
        while len(self._inflight) > cap // 2:
            self._room.clear()
            await self._room.wait()
        taken = await self.devices.take_due(self.clock(), cap - len(self._inflight), SEND_LEASE)
        if not taken:
            return 0
        pending = [(key, state) for key, state in taken if int(state.get("n", 0))]
        if len(pending) < len(taken):
            idle = [key for key, state in taken if not int(state.get("n", 0))]
            await self.devices.update_states(idle, lambda _k, s: _nothing_due(s))
        records = await self.devices.get_many([key[0] for key, _ in pending])
        gone = [key for key, _ in pending if key[0] not in records]
        if gone:  # the device was removed meanwhile: so is its state
            await self.devices.update_states(gone, lambda _k, _s: None)
        for key, state in pending:
            record = records.get(key[0])
            if record is None:
                continue
            task = asyncio.create_task(self._deliver(key, state, record))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(taken)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._room.set()

    async def drain(self) -> None:
        """Wait for every send in flight (tests, shutdown)."""
        while self._inflight:
            await asyncio.wait(tuple(self._inflight))

    async def _deliver(self, key: StateKey, taken: State, record: DeviceRecord) -> None:
        try:
            await self._deliver_one(key, taken, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store went away mid-send: the lease brings it back
            log.warning("push delivery failed: %s: %s", type(exc).__name__, str(exc)[:200])

    async def _deliver_one(self, key: StateKey, taken: State, record: DeviceRecord) -> None:
        platform = record.device.platform
        provider = self.providers.get(platform)
        note = coalesce.notification(taken, ttl=self.settings.push_ttl)
        if provider is None:
            result = SendResult("failed", detail=f"{platform} is not configured")
        else:
            async with self._slots[platform]:
                result = await self._send(provider, record.device, note)
        if result.status == "sent":
            # Recorded with the others that finished meanwhile: one store call for the group,
            # returning once it is in the store.
            await self._sent.submit((key, taken, platform, record.seen_at))
            return
        async with self._store_slots:
            await self._record(key, taken, platform, result)

    async def _write_sent(self, batch: Sequence[Sent]) -> list[None]:
        now = self.clock()
        taken = {key: state for key, state, _, _ in batch}
        gap = self.settings.push_min_gap
        async with self._store_slots:
            await self.devices.update_states(
                list(taken),
                lambda key, state: coalesce.after_sent(state, taken[key], now, gap),
            )
            for device_id in {
                key[0] for key, _, _, seen_at in batch if now - seen_at > TOUCH_EVERY
            }:
                await self.devices.touch(device_id, now)
            sent: dict[str, int] = {}
            for _, _, platform, _ in batch:
                sent[platform] = sent.get(platform, 0) + 1
            for platform, n in sent.items():
                await self._count(platform, "sent", n)
        return [None] * len(batch)

    async def _record(self, key: StateKey, taken: State, platform: str, result: SendResult) -> None:
        device_id, _ = key
        now = self.clock()
        status = result.status  # "sent" is recorded in groups: _record_sent
        if status == "gone":
            await self.devices.delete(device_id)
            await self._count(platform, "removed")
            log.info(
                "push: %s device %s is gone at its push service; removed",
                platform,
                device_id,
                extra={"device": device_id, "story": key[1]},
            )
        elif status == "retry" and int(taken.get("tries", 0)) + 1 < self.settings.push_max_attempts:
            delay = coalesce.retry_delay(int(taken.get("tries", 0)), result.retry_after)
            await self.devices.update_states(
                [key], partial(_after_retry, taken=taken, now=now, delay=delay)
            )
        else:
            await self.devices.update_states([key], partial(_after_failed, taken=taken, now=now))
            await self._count(platform, "failed")
            log.warning(
                "push: %s send to device %s failed: %s %s",
                platform,
                device_id,
                status,
                result.detail[:200],
                extra={"device": device_id, "story": key[1]},
            )

    async def _send(self, provider: Provider, device: Device, note: Notification) -> SendResult:
        limit = coalesce.BODY_LIMIT
        result = SendResult("failed", detail="not sent")
        for _ in range(TOO_LARGE_TRIES):
            try:
                result = await provider.send(device, note)
            except Exception as exc:  # a provider must not raise; if one does, try again later
                return SendResult("retry", detail=error_reason(exc))
            if result.status != "too_large":
                return result
            limit = max(coalesce.MIN_BODY, limit // 2)
            note = replace(
                note, body=coalesce.cut(note.body, limit), title=coalesce.cut(note.title, limit)
            )
        return SendResult("failed", detail="payload too large even when shortened")

    async def _count(self, platform: str, outcome: str, n: int = 1) -> None:
        counts = getattr(self.stats, outcome)
        counts[platform] = counts.get(platform, 0) + n
        await self.devices.count(platform, outcome, n)
        if self.observe is not None:
            self.observe(platform, outcome, n)

    # -- ops ---------------------------------------------------------------------------------------

    async def send_test(self, device_id: str) -> SendResult:
        """Send a test notification to one device now (`liveupdates push test DEVICE_ID`)."""
        record = await self.devices.get(device_id)
        if record is None:
            return SendResult("failed", detail=f"no device {device_id}")
        provider = self.providers.get(record.device.platform)
        if provider is None:
            return SendResult("failed", detail=f"{record.device.platform} is not configured")
        note = Notification(
            channel="test",
            seq=0,
            epoch="test",
            kind="updated",
            story_id="liveupdates-test",
            story_title="liveupdates test",
            story_url="",
            title="liveupdates test",
            body="If you can read this, push notifications reach this device.",
            ttl=60,
        )
        result = await self._send(provider, record.device, note)
        if result.status == "sent":
            await self.devices.touch(device_id, self.clock())
        elif result.status == "gone":
            await self.devices.delete(device_id)
            await self._count(record.device.platform, "removed")
        return result


def _merge(
    key: StateKey,
    state: State | None,
    *,
    changes: Mapping[StateKey, list[Change]],
    now: float,
    gap: float,
) -> State | None:
    for change in changes[key]:
        state = coalesce.merge(state, change, now, gap)
    return state


def _nothing_due(state: State | None) -> State | None:
    if state is None or int(state.get("n", 0)):
        return state
    return {**state, "due": None}


def _after_retry(
    _key: StateKey, state: State | None, *, taken: State, now: float, delay: float
) -> State | None:
    return coalesce.after_retry(state, taken, now, delay)


def _after_failed(_key: StateKey, state: State | None, *, taken: State, now: float) -> State | None:
    return coalesce.after_failed(state, taken, now)
