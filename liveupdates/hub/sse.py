"""The /v1/sse endpoint: one channel per stream, same messages as the WebSocket, SSE framing.

An idle stream is the common case (bench/pushpin.py: thousands per process), so what it holds
while open is kept small: the endpoint is a bare ASGI app (a Starlette function endpoint would keep
its Request and two exception-handling frames alive for the stream's life), the heartbeat is one
timer on the stream's waiter, and the disconnect watch is a bare `receive()` task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from liveupdates import metrics
from liveupdates.api.models import SSEQuery
from liveupdates.api.params import parse
from liveupdates.hub.connection import DirectConnection
from liveupdates.hub.core import Hub
from liveupdates.hub.edge import too_many
from liveupdates.hub.fanout import Membership
from liveupdates.hub.limits import Refused
from liveupdates.hub.protocol import (
    SSE_HEARTBEAT,
    ProtocolError,
    encode,
    parse_channel,
)
from liveupdates.hub.rest import SINCE_MESSAGE, error_response
from liveupdates.hub.session import session_failed
from liveupdates.hub.ssedirect import SSEWrite, direct_writer
from liveupdates.hub.state import channel_exists
from liveupdates.validate import InvalidInput

# Milliseconds an EventSource waits before reconnecting (browsers add nothing; keep it modest).
SSE_RETRY_MS = 3000
SSE_BATCH = 64
RETRY = f"retry: {SSE_RETRY_MS}\n\n".encode()


class SSEConnection(DirectConnection[SSEWrite]):
    """The queue is drained by the response body instead of a WebSocket writer.

    Once the response head is out, an event is written straight to uvicorn's transport from the
    fan-out's pass (hub/ssedirect.py) while nothing is queued or being written and the socket
    takes it; otherwise it joins the queue, which the body drains through ASGI as before.
    """

    __slots__ = ("wrote_at",)

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        # When the stream last wrote (time.monotonic): heartbeats come after silence only. The
        # direct writer sets it too, as its writes do not pass the stream's loop.
        self.wrote_at = time.monotonic()

    def write_directly(self, write: SSEWrite | None) -> None:
        self._direct = write

    def wait_armed(self, heartbeat: float) -> asyncio.Future[Any] | None:
        """The future to await for more to write (result True: `heartbeat` passed idle), or None
        when there is something to write or nothing more will be (the caller's own frame awaits
        it: no coroutine, no `wait_for` with its extra future and callbacks per idle stream)."""
        if self._queue or self.close_code is not None:
            return None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        silent = time.monotonic() - self.wrote_at
        timer = loop.call_later(max(0.0, heartbeat - silent), _beat, waiter)
        waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

    def next_chunk(self, beat: bool, heartbeat: float) -> str | None:
        """What to write after `wait_armed`'s future (`beat`: its result): queued events, a
        heartbeat after `heartbeat` seconds of silence, "" for nothing yet, or None once closed;
        the final close event is `close_event`'s."""
        self._waiter = None
        if self.close_code is not None:
            return None
        if self._queue:
            self.wrote_at = time.monotonic()
            return "".join(self._take(SSE_BATCH))
        # (The loop may run a timer a hair early: a millisecond's slack, not a second spin.)
        if beat and time.monotonic() - self.wrote_at >= heartbeat - 0.001:
            self.wrote_at = time.monotonic()
            return SSE_HEARTBEAT
        return ""

    def close_event(self) -> str | None:
        """Why the stream ends, for a client still there; EventSource reconnects with
        Last-Event-ID."""
        if self.peer_gone or self.close_code is None:
            return None
        return (
            "event: close\ndata: "
            + encode({"type": "close", "code": self.close_code, "reason": self.close_reason})
            + "\n\n"
        )


def _beat(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(True)  # `_wake` sets None: an event, not the heartbeat


class DisconnectWatch:
    """Tells `conn` when the client goes away, with one pending `receive()` and no coroutine of
    its own (the request was read already: a GET's next message is the disconnect)."""

    __slots__ = ("conn", "receive", "task")

    def __init__(self, receive: Receive, conn: SSEConnection) -> None:
        self.receive = receive
        self.conn = conn
        self.task: asyncio.Future[Any] | None = None
        self._arm()

    def _arm(self) -> None:
        self.task = asyncio.ensure_future(self.receive())
        self.task.add_done_callback(self._received)

    def _received(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None or task.result()["type"] == "http.disconnect":
            self.conn.peer_closed(1001)
        elif self.conn.close_code is None:
            self._arm()  # more of a request body nobody asked for: keep listening

    async def stop(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# The response head; EdgeMiddleware adds the security headers, PublicCORS its own.
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """Opens a stream and runs it until it closes; notices the client leaving even when nothing
    is being sent.

    One coroutine frame for the stream's whole life (no generator, no waiting helper, the Request
    dropped once checked): idle streams are most of a process's streams, and each frame they hold
    is memory per reader."""
    opened = await open_stream(Request(scope, receive))
    if isinstance(opened, Response):
        await opened(scope, receive, send)
        return
    query, address = opened
    del opened
    hub: Hub = scope["app"].state.hub
    if scope["method"] == "HEAD":
        # The head a GET would get, and the end: a HEAD has no body, so no stream to hold open.
        hub.limits.release(address)
        await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    conn = SSEConnection(hub.settings.hub_send_queue)
    hub.connections.add(conn)
    metrics.client_connected("sse")
    # The join runs beside the stream: its replay is paced by what the stream drains.
    joining = Joining(hub, conn, query)
    watch: DisconnectWatch | None = None
    try:
        await receive()  # the request itself (a GET: no body): what comes next is the end
        watch = DisconnectWatch(receive, conn)
        await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
        await send({"type": "http.response.body", "body": RETRY, "more_body": True})
        conn.write_directly(direct_writer(scope, receive, conn))
        heartbeat = hub.settings.hub_sse_heartbeat
        while True:
            waiter = conn.wait_armed(heartbeat)
            chunk = conn.next_chunk(await waiter if waiter is not None else False, heartbeat)
            if chunk is None:
                break
            if not chunk:
                continue
            conn._in_flight = True  # direct writes must not overtake these
            await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
            conn._in_flight = False
        closing = conn.close_event()
        if closing is not None:
            await send({"type": "http.response.body", "body": closing.encode(), "more_body": True})
        if not conn.peer_gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        conn.peer_closed(1006)
    finally:
        conn.close(1000)
        conn.write_directly(None)  # the writer refers to conn: no cycle left for the collector
        await joining.stop()
        if watch is not None:
            await watch.stop()
        if joining.member is not None:
            await hub.leave(joining.member)
        hub.connections.discard(conn)
        hub.limits.release(address)
        metrics.client_disconnected("sse")
        conn._mark_finished()


class Joining:
    """`hub.join` as a task beside the stream; the task is dropped once done (a finished task
    kept per idle stream would be memory for nothing)."""

    __slots__ = ("conn", "hub", "member", "task")

    def __init__(self, hub: Hub, conn: SSEConnection, query: SSEQuery) -> None:
        self.hub = hub
        self.conn = conn
        self.member: Membership | None = None
        self.task: asyncio.Task[None] | None = asyncio.create_task(self._join(query))
        self.task.add_done_callback(self._done)

    async def _join(self, query: SSEQuery) -> None:
        self.member = await self.hub.join(
            self.conn, query.channel, query.since, query.epoch, sse=True
        )

    def _done(self, task: asyncio.Task[None]) -> None:
        self.task = None
        if not task.cancelled():
            exc = task.exception()
            if isinstance(exc, Exception):
                session_failed(self.hub, self.conn, exc, "SSE")

    async def stop(self) -> None:
        task = self.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def open_stream(request: Request) -> Response | tuple[SSEQuery, str]:
    """The checks before a stream opens: an error response, or (query, client address), the
    address counted in hub.limits (released when the stream ends)."""
    hub: Hub = request.app.state.hub
    if not request.app.state.origins.allows(request.headers.get("origin")):
        return error_response(403, "forbidden", "origin not allowed")
    params = dict(request.query_params)
    # EventSource repeats the original URL on reconnect; Last-Event-ID is the newer position.
    last_event_id = request.headers.get("last-event-id")
    if last_event_id:
        params["since"] = last_event_id
    try:
        query = parse(SSEQuery, params, messages=SINCE_MESSAGE)
        parse_channel(query.channel)  # the kinds, and the protocol's wording
    except InvalidInput as exc:
        return error_response(400, "bad_request", str(exc))
    except ProtocolError as exc:
        return error_response(400, "bad_request", exc.message)
    if not await channel_exists(hub.store, query.channel):
        return error_response(404, "not_found", f"no such channel {query.channel}")
    address = request.client.host if request.client else "unknown"
    try:
        hub.limits.acquire(address)
    except Refused as exc:
        return too_many(exc)
    return query, address


class SSEEndpoint:
    """/v1/sse as a bare ASGI app (an object, not a function, so Starlette's Route does not wrap
    it; mount it with `methods=["GET", "HEAD"]`): the Request lives only while the stream opens."""

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return stream(scope, receive, send)


sse_endpoint = SSEEndpoint()
