"""Channel registry and fan-out: one bus subscription per channel, one encoding per entry.

Transport-independent: members hold a `Connection`, and delivery is a synchronous, non-blocking
`send_text` of a frame built once for every reader of the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from liveupdates import metrics
from liveupdates.bus.base import Bus, HistoryLost, Subscription
from liveupdates.hub.connection import TOO_SLOW_REASON, Connection, FrameRun
from liveupdates.hub.protocol import (
    CLOSE_HISTORY_LOST,
    CLOSE_INTERNAL,
    CLOSE_TOO_SLOW,
    encode_update,
    sse_event,
)

HISTORY_LOST_REASON = "log history lost; resume with since/epoch for a reset"
# After a pass over the members, the pump waits as long as that pass took (at most this long)
# before taking the next batch. Under a burst, updates then reach each reader in a few writes of
# several frames instead of one write (one send() system call, most of the fan-out's CPU) per
# frame. A small channel barely waits (its pass is short), and an update after a quiet spell is
# not delayed at all: the wait is long over. The cap is latency's share: the longer the pump
# waits, the further the publisher runs ahead of readers that cannot take more, and every frame
# queued behind them counts from its publish time. A 5 ms cap, A/B'd against this one (3
# alternating runs each, README "Benchmarks"), cut burst p99 at 10,000 readers from 7.5x the bare
# broadcast's to 1.8x, neither meeting the 1.0x target, and the burst's frames per core from
# 3.7x the bare broadcast's to 1.6x (worst run 1.15x, under the 1.5x target): not kept.
FANOUT_LINGER_MAX = 0.02
log = logging.getLogger(__name__)


class Frame:
    """One log entry encoded for the wire, shared by every member of the channel."""

    __slots__ = ("_sse", "seq", "text")

    def __init__(self, seq: int, text: str) -> None:
        self.seq = seq
        self.text = text
        self._sse: str | None = None

    @property
    def sse(self) -> str:
        # Encoded lazily: a channel with no SSE readers never pays for it.
        if self._sse is None:
            self._sse = sse_event("update", self.text, self.seq)
        return self._sse


class Membership:
    """One connection's place in one channel.

    While the connection is catching up (replay or reset), live frames wait in `pending`; `go_live`
    then sends those it has not already sent. After that, `offer` sends each frame with a seq above
    `sent_seq` exactly once.
    """

    __slots__ = ("channel", "conn", "pending", "pending_limit", "sent_seq", "sse")

    def __init__(self, channel: str, conn: Connection, *, sse: bool, pending_limit: int) -> None:
        self.channel = channel
        self.conn = conn
        self.sse = sse
        self.sent_seq = 0
        self.pending: list[Frame] | None = []
        self.pending_limit = pending_limit

    def offer_run(
        self, frames: list[Frame], run: FrameRun, prefix: list[int], each: list[int]
    ) -> None:
        """`offer` each of `frames` (ascending seqs; `run` holds their texts), counting what went.

        The common case, a live WebSocket reader that has sent nothing of them yet, hands the
        whole run to the connection at once (one write): it took the first k frames, counted as
        `prefix[k] += 1`. Otherwise frame i handed over now counts as `each[i] += 1`."""
        if self.pending is None and not self.sse and frames[0].seq > self.sent_seq:
            self.sent_seq = frames[-1].seq
            prefix[self.conn.send_run(run)] += 1
            return
        for i, frame in enumerate(frames):
            if self.offer(frame):
                each[i] += 1

    def render(self, frame: Frame) -> str:
        return frame.sse if self.sse else frame.text

    def offer(self, frame: Frame) -> bool:
        """Send or hold `frame`; True when it was handed to the connection now."""
        pending = self.pending
        if pending is not None:
            if self.conn.close_code is not None:
                return False
            pending.append(frame)
            if len(pending) > self.pending_limit:
                self.conn.close(CLOSE_TOO_SLOW, TOO_SLOW_REASON)
            return False
        if frame.seq <= self.sent_seq:
            return False
        self.sent_seq = frame.seq
        return self.conn.send_text(frame.sse if self.sse else frame.text)

    async def go_live(self, sent_seq: int) -> None:
        """Everything up to `sent_seq` was sent: flush what arrived meanwhile, then go live."""
        self.sent_seq = sent_seq
        pending = self.pending
        while pending:
            frame = pending.pop(0)
            if frame.seq > self.sent_seq:
                self.sent_seq = frame.seq
                if not await self.conn.send_paced(self.render(frame)):
                    break
        # No await between the loop's last check and this line: nothing can slip in between.
        self.pending = None


def readers_per_frame(prefix: list[int], each: list[int]) -> list[int]:
    """How many readers got frame i of a run: those that took a prefix longer than i (`prefix[k]`
    readers took the first k frames) plus those counted one by one (`each[i]`). Pure."""
    counts = list(each)
    took_more = 0
    for i in range(len(each) - 1, -1, -1):
        took_more += prefix[i + 1]
        counts[i] += took_more
    return counts


class ChannelGroup:
    """Every member of one channel in this process, fed by one bus subscription."""

    def __init__(
        self, channel: str, bus: Bus, on_dead: Callable[[ChannelGroup], None] | None = None
    ) -> None:
        self.channel = channel
        self.members: set[Membership] = set()
        self._bus = bus
        self._on_dead = on_dead
        self._sub: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self._epoch: str | None = None  # the log's epoch, while the position below is trusted
        self.ready: asyncio.Task[None] = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        self._sub = await self._bus.subscribe(self.channel)
        self._epoch = (await self._bus.bounds(self.channel)).epoch
        self._pump = asyncio.create_task(self._run(self._sub), name=f"fanout {self.channel}")

    def live_position(self) -> tuple[int, str] | None:
        """(seq, epoch): every entry up to seq was offered to the members of that moment, every
        later one will be offered to everyone who is a member by then. None: unknown (starting,
        or the log's history was lost once: then readers take the store's word).

        The subscription's position is the last seq it handed to the pump, which offers a batch
        without awaiting in between: seen from any other task, handed out means offered."""
        sub = self._sub
        if self._epoch is None or sub is None or sub.position is None or self._pump is None:
            return None
        if self._pump.done():
            return None
        return sub.position, self._epoch

    async def _run(self, sub: Subscription) -> None:
        channel = self.channel
        loop = asyncio.get_running_loop()
        while True:
            try:
                async for batch in sub:
                    # Each entry encoded once; every member gets the batch in one pass.
                    frames = [
                        Frame(entry.seq, encode_update(channel, entry.seq, entry.event))
                        for entry in batch
                    ]
                    run = FrameRun([frame.text for frame in frames])
                    count = len(frames)
                    ws_prefix, sse_prefix = [0] * (count + 1), [0] * (count + 1)
                    ws_each, sse_each = [0] * count, [0] * count
                    started = loop.time()
                    # offer_run never awaits and never changes `members`: no copy needed.
                    for member in self.members:
                        if member.sse:
                            member.offer_run(frames, run, sse_prefix, sse_each)
                        else:
                            member.offer_run(frames, run, ws_prefix, ws_each)
                    ws_sent = readers_per_frame(ws_prefix, ws_each)
                    sse_sent = readers_per_frame(sse_prefix, sse_each)
                    for i, entry in enumerate(batch):
                        metrics.frame_sent(entry.event, ws_sent[i], sse_sent[i])
                    await asyncio.sleep(min(FANOUT_LINGER_MAX, loop.time() - started))
                return
            except HistoryLost as lost:
                # The log was replaced (new epoch) or dropped entries this process never sent.
                # Members reconnect, resume and get an honest reset.
                log.warning("fan-out lost history: %s", lost, extra={"channel": channel})
                self._epoch = None
                for member in self.members:
                    member.conn.close(CLOSE_HISTORY_LOST, HISTORY_LOST_REASON)
            except Exception:
                # The bus or the store failed under us. A channel that silently stops would be
                # worse than a reconnect: close its members and let the next join start afresh.
                log.exception("fan-out of %s failed", channel, extra={"channel": channel})
                for member in self.members:
                    member.conn.close(CLOSE_INTERNAL, "internal error; reconnect and resume")
                if self._on_dead is not None:
                    self._on_dead(self)
                return

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.ready
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self._sub is not None:
            await self._sub.close()


class Fanout:
    """Registry of channel groups: created on first join, torn down when the last member leaves."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._groups: dict[str, ChannelGroup] = {}

    def channels(self) -> list[str]:
        return list(self._groups)

    def members(self, channel: str) -> int:
        group = self._groups.get(channel)
        return len(group.members) if group else 0

    def live_position(self, channel: str) -> tuple[int, str] | None:
        group = self._groups.get(channel)
        return group.live_position() if group is not None else None

    async def join(self, member: Membership) -> None:
        """Add `member`; returns once the channel's bus subscription is listening."""
        group = self._groups.get(member.channel)
        if group is None:
            group = ChannelGroup(member.channel, self._bus, self._forget)
            self._groups[member.channel] = group
        group.members.add(member)
        try:
            await asyncio.shield(group.ready)
        except BaseException:
            await self.leave(member)
            raise

    def _forget(self, group: ChannelGroup) -> None:
        if self._groups.get(group.channel) is group:
            del self._groups[group.channel]
            # Its subscription still needs closing; nobody awaits this group any more.
            asyncio.get_running_loop().create_task(group.stop())

    async def leave(self, member: Membership) -> None:
        group = self._groups.get(member.channel)
        if group is None or member not in group.members:
            return
        group.members.discard(member)
        if not group.members:
            del self._groups[member.channel]
            await group.stop()

    async def close(self) -> None:
        groups = list(self._groups.values())
        self._groups.clear()
        for group in groups:
            group.members.clear()
            await group.stop()
