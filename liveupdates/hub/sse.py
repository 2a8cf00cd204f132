"""The /v1/sse endpoint: one channel per stream, same messages as the WebSocket, SSE framing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from liveupdates import metrics
from liveupdates.api.models import SSEQuery
from liveupdates.api.params import parse
from liveupdates.hub.connection import QueuedConnection
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


class SSEConnection(QueuedConnection):
    """The queue is drained by the response body instead of a WebSocket writer.

    Once the response head is out, an event is written straight to uvicorn's transport from the
    fan-out's pass (hub/ssedirect.py) while nothing is queued or being written and the socket
    takes it; otherwise it joins the queue, which the body drains through ASGI as before.
    """

    __slots__ = ("_direct", "_in_flight")

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._direct: SSEWrite | None = None
        self._in_flight = False  # the body holds events not yet written: keep order, queue

    def write_directly(self, write: SSEWrite | None) -> None:
        self._direct = write

    def send_text(self, text: str) -> bool:
        direct = self._direct
        if (
            direct is not None
            and not self._in_flight
            and not self._queue
            and self.close_code is None
            and direct(text)
        ):
            return True
        return super().send_text(text)

    async def stream(self, heartbeat: float) -> AsyncIterator[str]:
        while True:
            batch = await self.next_batch(SSE_BATCH, timeout=heartbeat)
            if batch is None:
                break
            self._in_flight = True
            yield "".join(batch) if batch else SSE_HEARTBEAT
            self._in_flight = False  # the consumer resumes us once the chunk was written
        if not self.peer_gone and self.close_code is not None:
            # Tell the client why the stream ends; EventSource reconnects with Last-Event-ID.
            yield (
                "event: close\ndata: "
                + encode({"type": "close", "code": self.close_code, "reason": self.close_reason})
                + "\n\n"
            )


class SSEResponse(Response):
    """Streams an SSEConnection; notices the client leaving even when nothing is being sent."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: Hub,
        conn: SSEConnection,
        channel: str,
        since: int | None,
        epoch: str | None,
        address: str,
    ) -> None:
        # Not Response.__init__: that would declare Content-Length: 0 for the empty body.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.hub = hub
        self.conn = conn
        self.channel = channel
        self.since = since
        self.epoch = epoch
        self.address = address  # counted in hub.limits by sse_endpoint; released when done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub, conn = self.hub, self.conn
        hub.connections.add(conn)
        metrics.client_connected("sse")
        member: Membership | None = None

        async def join() -> None:
            nonlocal member
            member = await hub.join(conn, self.channel, self.since, self.epoch, sse=True)

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            conn.peer_closed(1001)

        # The join runs beside the stream: its replay is paced by what the stream drains.
        joiner = asyncio.create_task(join())
        joiner.add_done_callback(lambda t: _close_on_failure(t, hub, conn))
        watcher = asyncio.create_task(watch_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": RETRY, "more_body": True})
            conn.write_directly(direct_writer(scope, receive))
            async for chunk in conn.stream(hub.settings.hub_sse_heartbeat):
                await send(
                    {"type": "http.response.body", "body": chunk.encode(), "more_body": True}
                )
            if not conn.peer_gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            conn.peer_closed(1006)
        finally:
            conn.close(1000)
            for task in (joiner, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if member is not None:
                await hub.leave(member)
            hub.connections.discard(conn)
            hub.limits.release(self.address)
            metrics.client_disconnected("sse")
            conn._mark_finished()


def _close_on_failure(task: asyncio.Task[None], hub: Hub, conn: SSEConnection) -> None:
    if not task.cancelled():
        exc = task.exception()
        if isinstance(exc, Exception):
            session_failed(hub, conn, exc, "SSE")


async def sse_endpoint(request: Request) -> Response:
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
    channel, since, epoch = query.channel, query.since, query.epoch
    if not await channel_exists(hub.store, channel):
        return error_response(404, "not_found", f"no such channel {channel}")
    address = request.client.host if request.client else "unknown"
    try:
        hub.limits.acquire(address)
    except Refused as exc:
        return too_many(exc)
    conn = SSEConnection(hub.settings.hub_send_queue)
    return SSEResponse(hub, conn, channel, since, epoch, address)
