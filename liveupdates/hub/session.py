"""One WebSocket client's conversation: limits, message dispatch, its subscriptions.

Transport-independent: it reads text handed to it and answers through a `Connection`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from liveupdates import metrics
from liveupdates.backends.availability import error_reason
from liveupdates.backends.errors import BACKEND_ERRORS
from liveupdates.hub.connection import Connection, QueuedConnection
from liveupdates.hub.core import Hub
from liveupdates.hub.fanout import Membership
from liveupdates.hub.limits import BACKEND_RETRY_AFTER
from liveupdates.hub.protocol import (
    BAD_REQUEST,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    MESSAGE_TOO_LARGE,
    PONG,
    RATE_LIMITED,
    TOO_MANY_SUBSCRIPTIONS,
    UNKNOWN_CHANNEL,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    encode_error,
    encode_unsubscribed,
    parse_client_message,
)
from liveupdates.hub.ratelimit import TokenBucket
from liveupdates.hub.state import channel_exists

log = logging.getLogger("liveupdates.hub")

# A client may cause this many errors (bad JSON, oversize frames) in a burst, refilled at
# ABUSE_RATE per second; past that it is closed with 1008. Honest clients never get near it.
ABUSE_BURST = 10
ABUSE_RATE = 1.0
# Messages over the rate limit are forgiven longer (a page subscribing to many channels at once
# only needs to retry the refused ones): 2 x hub_rate_burst of them in a burst, refilled at the
# message rate, before 1008. Only a client that ignores `rate_limited` gets there.
EXCESS_FACTOR = 2
ABUSE_REASON = "too many bad or excess messages"


class Session:
    # One per WebSocket connection: slots keep idle connections small (bench: capacity).
    __slots__ = (
        "abuse",
        "clock",
        "conn",
        "excess",
        "hub",
        "max_bytes",
        "max_subscriptions",
        "memberships",
        "rate",
    )

    def __init__(
        self,
        hub: Hub,
        conn: Connection,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = hub.settings
        self.hub = hub
        self.conn = conn
        self.clock = clock
        self.max_bytes = settings.hub_max_message_bytes
        self.max_subscriptions = settings.hub_max_subscriptions
        now = clock()
        self.rate = TokenBucket(settings.hub_rate_per_second, settings.hub_rate_burst, now)
        self.abuse = TokenBucket(ABUSE_RATE, ABUSE_BURST, now)
        self.excess = TokenBucket(
            settings.hub_rate_per_second, EXCESS_FACTOR * settings.hub_rate_burst, now
        )
        self.memberships: dict[str, Membership] = {}

    # -- input -------------------------------------------------------------------------------------

    async def handle_text(self, text: str) -> None:
        now = self.clock()
        # len(text) is a cheap lower bound on the UTF-8 size; encode only when it might matter.
        if len(text) > self.max_bytes or (
            len(text) * 4 > self.max_bytes and len(text.encode()) > self.max_bytes
        ):
            self._fault(now, MESSAGE_TOO_LARGE, f"messages are limited to {self.max_bytes} bytes")
            return
        if not self.rate.take(now):
            self._fault(now, RATE_LIMITED, "too many messages; slow down", bucket=self.excess)
            return
        try:
            message = parse_client_message(text)
        except ProtocolError as exc:
            self._fault(now, exc.code, exc.message, exc.channel)
            return
        if isinstance(message, Ping):
            self.conn.send_text(PONG)
        elif isinstance(message, Subscribe):
            await self.subscribe(message)
        elif isinstance(message, Unsubscribe):
            await self.unsubscribe(message.channel)

    def handle_binary(self) -> None:
        self._fault(self.clock(), BAD_REQUEST, "binary frames are not supported; send JSON text")

    def _fault(
        self,
        now: float,
        code: str,
        message: str,
        channel: str | None = None,
        *,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.conn.send_text(encode_error(code, message, channel))
        if not (bucket or self.abuse).take(now):
            self.conn.close(CLOSE_POLICY, ABUSE_REASON)

    # -- subscriptions -----------------------------------------------------------------------------

    async def subscribe(self, message: Subscribe) -> None:
        channel = message.channel
        old = self.memberships.pop(channel, None)
        if old is not None:
            # Subscribing again restarts the channel from the given position.
            await self.hub.leave(old)
        if len(self.memberships) >= self.max_subscriptions:
            self.conn.send_text(
                encode_error(
                    TOO_MANY_SUBSCRIPTIONS,
                    f"at most {self.max_subscriptions} subscriptions per connection",
                    channel,
                )
            )
            return
        # A channel that readers in this process are subscribed to exists (they were checked).
        live = not self.hub.availability.down and self.hub.fanout.members(channel)
        if not live and not await channel_exists(self.hub.store, channel):
            self.conn.send_text(
                encode_error(UNKNOWN_CHANNEL, f"no such channel {channel}", channel)
            )
            return
        member = await self.hub.join(self.conn, channel, message.since, message.epoch)
        self.memberships[channel] = member

    async def unsubscribe(self, channel: str) -> None:
        member = self.memberships.pop(channel, None)
        if member is not None:
            await self.hub.leave(member)
        # Answered either way: unsubscribing twice is harmless.
        self.conn.send_text(encode_unsubscribed(channel))

    async def close(self) -> None:
        members = list(self.memberships.values())
        self.memberships.clear()
        for member in members:
            await self.hub.leave(member)


@contextlib.asynccontextmanager
async def websocket_session(
    hub: Hub, conn: QueuedConnection, address: str
) -> AsyncIterator[Session]:
    """A WebSocket client's Session, counted among the hub's connections while it lasts.

    Both WebSocket transports (ws.py, wsserver.py) run their reader and writer inside this,
    after `hub.limits.acquire(address)` let the connection in; this releases it.
    """
    session = Session(hub, conn)
    hub.connections.add(conn)
    metrics.client_connected("ws")
    try:
        yield session
    finally:
        try:
            await session.close()
        finally:
            hub.connections.discard(conn)
            hub.limits.release(address)
            metrics.client_disconnected("ws")


def session_failed(
    hub: Hub, conn: QueuedConnection, exc: Exception, what: str = "WebSocket"
) -> None:
    """A client's reader or subscribe raised: a backend outage (close 1013, one log line for the
    whole outage) or a bug (close 1011, logged with its traceback at most once per
    FAILURE_LOG_INTERVAL: a bug every client hits must not write a traceback per client)."""
    if isinstance(exc, BACKEND_ERRORS):
        hub.availability.report(error_reason(exc))
        conn.close(CLOSE_TRY_AGAIN, f"store unavailable; retry in {BACKEND_RETRY_AFTER} s")
        return
    now = time.monotonic()
    if hub.failure_logged_at is None or now - hub.failure_logged_at >= FAILURE_LOG_INTERVAL:
        hub.failure_logged_at = now
        log.error("%s session failed", what, exc_info=exc)
    conn.close(CLOSE_INTERNAL, "internal error")


FAILURE_LOG_INTERVAL = 60.0
