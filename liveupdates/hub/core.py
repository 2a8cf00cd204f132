"""The Hub: settings, store, bus and fan-out together, and the one subscribe procedure.

WebSocket and SSE both call `Hub.join`, so replay, reset and the hand-over to live delivery behave
identically on both.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from liveupdates.backends.availability import Availability
from liveupdates.bus.base import Bus
from liveupdates.hub.connection import Connection, QueuedConnection
from liveupdates.hub.fanout import Fanout, Frame, Membership
from liveupdates.hub.limits import ConnectionLimits, RequestRate
from liveupdates.hub.protocol import (
    CLOSE_RESTART,
    encode,
    encode_subscribed,
    encode_update,
    sse_event,
)
from liveupdates.hub.state import build_reset
from liveupdates.models import LogEntry
from liveupdates.settings import Settings
from liveupdates.store.base import LogBounds, Store

RESTART_REASON = "service restart; reconnect with backoff and resume"
# How long shutdown waits for close frames to reach clients.
SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class Catchup:
    """How a subscriber at `since` gets to the channel's current position."""

    bounds: LogBounds
    replay: list[LogEntry] | None  # None: cannot replay, send a reset


def can_replay(bounds: LogBounds, since: int | None, epoch: str | None, cap: int) -> bool:
    """Whether since+1 .. bounds.last can all be replayed. Pure."""
    if since is None or (epoch is not None and epoch != bounds.epoch):
        return False
    if since > bounds.last:
        return False  # a position this log never reached: from another log, so meaningless here
    if since == bounds.last:
        return True
    if bounds.last - since > cap:
        return False
    return 0 < bounds.first <= since + 1


class Hub:
    def __init__(self, settings: Settings, store: Store, bus: Bus) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.fanout = Fanout(bus)
        self.connections: set[QueuedConnection] = set()
        self.shutting_down = False
        self.limits = ConnectionLimits(
            settings.limits_connections, settings.limits_connections_per_address
        )
        self.request_rate = RequestRate(settings.limits_requests_per_second_per_address)
        # Whether requests fail with 503 (the store or the bus is down): one log line when that
        # starts, one when a request succeeds again. No settling time: `down` gates live
        # catch-up (session.py), which must stop at the first failure.
        self.availability = Availability("store or bus", settle=0.0)
        self.failure_logged_at: float | None = None  # last traceback of a failed session

    async def catchup(self, channel: str, since: int | None, epoch: str | None) -> Catchup:
        bounds = await self.bus.bounds(channel)
        if since is None or not can_replay(bounds, since, epoch, self.settings.log_replay_cap):
            return Catchup(bounds, None)
        want = bounds.last - since
        entries = await self.bus.read_since(channel, since, want) if want else []
        # Retention may have trimmed the log between the two reads: replay only an unbroken run.
        if len(entries) != want or (entries and entries[0].seq != since + 1):
            return Catchup(bounds, None)
        return Catchup(bounds, entries)

    def live_catchup(self, channel: str, since: int | None, epoch: str | None) -> Catchup | None:
        """The catch-up of a reader that needs nothing from the log, from the channel's live
        position in this process (no store read): a fresh subscribe, or a resume at exactly that
        position. None: ask the store (`catchup`).

        Called right after the member joined the channel's group: everything after the position
        reaches the member's pending frames, so nothing is lost or sent twice."""
        # While requests fail on the store, a subscribe is told to come back (1013) as before.
        live = self.fanout.live_position(channel) if not self.availability.down else None
        if live is None:
            return None
        last, current = live
        if since is None:
            return Catchup(LogBounds(first=0, last=last, epoch=current), None)
        if since == last and (epoch is None or epoch == current):
            return Catchup(LogBounds(first=0, last=last, epoch=current), [])
        return None

    async def join(
        self,
        conn: Connection,
        channel: str,
        since: int | None,
        epoch: str | None,
        *,
        sse: bool = False,
    ) -> Membership:
        """Subscribe `conn` to `channel` and send `subscribed` and the replay or reset.

        Order matters: listen to the bus first (live frames wait in the membership), then read
        the log, then send, then flush the waiting frames skipping seqs already sent. Nothing
        between the log read and live delivery can be lost or sent twice.
        """
        member = Membership(
            channel, conn, sse=sse, pending_limit=max(self.settings.hub_send_queue, 16)
        )
        await self.fanout.join(member)
        try:
            plan = self.live_catchup(channel, since, epoch) or await self.catchup(
                channel, since, epoch
            )
            bounds = plan.bounds
            recovered = plan.replay is not None
            subscribed = encode_subscribed(channel, bounds.last, bounds.epoch, recovered)
            if sse:
                # The SSE id is where the client stands: Last-Event-ID then resumes correctly.
                at = since if recovered else (bounds.last if since is None else None)
                await conn.send_paced(sse_event("subscribed", subscribed, at))
            else:
                await conn.send_paced(subscribed)
            if plan.replay is not None:
                for entry in plan.replay:
                    frame = Frame(entry.seq, encode_update(channel, entry.seq, entry.event))
                    await conn.send_paced(member.render(frame))
            elif since is not None:
                reset = encode(await build_reset(self.store, channel, bounds.last))
                await conn.send_paced(sse_event("reset", reset, bounds.last) if sse else reset)
            await member.go_live(bounds.last)
        except BaseException:
            await self.fanout.leave(member)
            raise
        return member

    async def leave(self, member: Membership) -> None:
        await self.fanout.leave(member)

    async def shutdown(self) -> None:
        """Tell every client to reconnect later (1012) and wait briefly for the close frames."""
        self.shutting_down = True
        conns = list(self.connections)
        for conn in conns:
            conn.close(CLOSE_RESTART, RESTART_REASON)
        if conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.wait_finished() for c in conns)), SHUTDOWN_GRACE
                )
        await self.fanout.close()
