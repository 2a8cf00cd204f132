"""/v1/ws served by the `websockets` library's own asyncio server (optional, `hub_ws_port`).

The same wire protocol, Session and Hub as the ASGI endpoint (liveupdates/hub/ws.py); only the
transport differs. It exists for memory: an idle connection costs about a third less than under
uvicorn + Starlette (README, "Benchmarks"), because there is no ASGI scope, receive queue or
middleware chain per connection.

It runs in the web process's own event loop, next to uvicorn, started and stopped by the app's
lifespan (`create_app`), so the fan-out, the bus reader and `Hub.shutdown` (1012) cover it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Callable, Coroutine, Iterable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from liveupdates.hub.connection import (
    CLOSE_TIMEOUT,
    WRITE_BATCH,
    FrameRun,
    QueuedConnection,
    write_text_frame,
    write_text_run,
)
from liveupdates.hub.core import RESTART_REASON, Hub
from liveupdates.hub.limits import Refused
from liveupdates.hub.origins import OriginPolicy
from liveupdates.hub.protocol import CLOSE_RESTART, CLOSE_TRY_AGAIN
from liveupdates.hub.session import Session, session_failed, websocket_session

PATH = "/v1/ws"


class WebsocketsConnection(QueuedConnection):
    """The `websockets` asyncio transport behind the hub's `Connection` interface.

    A frame is written synchronously into the transport while it is below its high-water mark and
    nothing is queued; otherwise it is queued and a writer task, started only then and gone once
    the queue is empty, sends it with flow control. An idle connection therefore has no task of
    its own beyond what `websockets` keeps (bench: capacity).
    """

    __slots__ = ("_closer", "_writer", "ws")

    def __init__(self, ws: ServerConnection, limit: int) -> None:
        super().__init__(limit)
        self.ws = ws
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def writes_directly(self) -> bool:
        return True

    def _direct(self, text: str) -> bool:
        ws = self.ws
        if ws.paused or ws.transport.is_closing():
            return False
        return write_text_frame(ws.protocol, ws.transport.write, text)

    def send_run(self, run: FrameRun) -> int:
        if self.close_code is None and self._writer is None and not self._queue:
            ws = self.ws
            if (
                not ws.paused
                and not ws.transport.is_closing()
                and write_text_run(ws.protocol, ws.transport.write, run)
            ):
                return len(run.texts)
        return super().send_run(run)

    def send_text(self, text: str) -> bool:
        if (
            self.close_code is None
            and self._writer is None
            and not self._queue
            and self._direct(text)
        ):
            return True
        if not super().send_text(text):
            return False
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return True

    async def _drain(self) -> None:
        try:
            while self._queue and self.close_code is None:
                for text in self._take(WRITE_BATCH):
                    if self.close_code is not None:
                        return
                    # Waits for room, the queue absorbing meanwhile; a client that takes
                    # nothing for SEND_TIMEOUT is closed with 4008.
                    if not self._direct(text) and not await self.send_within_deadline(
                        self.ws.send(text)
                    ):
                        return
        except Exception:  # ConnectionClosed, or the transport failed: the peer is gone
            self.peer_closed(1006)
        finally:
            self._writer = None

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is not None:
            return
        super().close(code, reason)
        if not self.peer_gone:
            self._closer = asyncio.get_running_loop().create_task(self._send_close())

    async def _send_close(self) -> None:
        try:
            # The close frame goes into the transport at once (a client that reads on gets
            # it); then websockets waits for room without a deadline of its own, so bound it
            # and abort: that frees what the kernel and the transport hold for this client.
            await asyncio.wait_for(
                self.ws.close(self.close_code or 1000, self.close_reason), CLOSE_TIMEOUT
            )
        except TimeoutError:
            self.ws.transport.abort()
        except Exception:  # the peer went away meanwhile: nothing to close
            pass

    async def finish(self) -> None:
        """After the handler read its last frame: let the close frame go, stop the writer."""
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
        self._mark_finished()


ProcessRequest = Callable[[ServerConnection, Request], Response | None]


class WsEndpoint:
    """/v1/ws on a `websockets` connection: the origin check, then the hub's session.

    Shared by the second port (`start_ws_server`) and the default port's front door
    (hub/frontdoor.py)."""

    def __init__(self, hub: Hub, origins: OriginPolicy, max_size: int) -> None:
        self.hub = hub
        self.origins = origins
        self.max_size = max_size

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if not self.origins.allows(request.headers.get("Origin")):
            return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        return None

    def handle(self, ws: ServerConnection) -> Coroutine[Any, Any, None]:
        slim_after_handshake(ws)
        # The handler's coroutine itself, not one wrapping it: one frame less per idle connection.
        return _handle(self.hub, ws)


def slim_after_handshake(ws: ServerConnection) -> None:
    """Let go of what an open connection keeps but nothing reads again. Measured with tracemalloc
    (1,000 idle subscribed connections through the front door): 15.0 KiB per connection traced
    before, 10.3 after. The handshake's headers, request and response, were 4.1 KiB of it; the
    two empty deques (drain waiters, incoming frames) 0.7 KiB each, since CPython gives an empty
    deque its first block at once."""
    if ws.request is not None:
        # Emptied, not dropped: websockets' parser keeps the request object for the connection's
        # life, and None would mean "no handshake yet" to it.
        ws.request.headers.clear()
    ws.response = None
    ws.drain_waiters = []  # type: ignore[assignment]
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    if isinstance(getattr(frames, "queue", None), collections.deque):
        frames.queue = ListQueue(frames.queue)  # type: ignore[union-attr]


class ListQueue(list[Any]):
    """What websockets' incoming-frame queue calls on its deque, on a list (56 bytes empty). It
    holds a few frames at most (reading pauses at `max_queue`), so popping the front is cheap."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def extendleft(self, items: Iterable[Any]) -> None:
        # deque.extendleft puts each item first in turn, so the last one ends up in front.
        self[0:0] = reversed(list(items))


async def _handle(hub: Hub, ws: ServerConnection) -> None:
    if hub.shutting_down:
        await ws.close(CLOSE_RESTART, RESTART_REASON)
        return
    remote = ws.remote_address
    address = str(remote[0]) if remote else "unknown"
    try:
        hub.limits.acquire(address)
    except Refused as exc:
        await ws.close(CLOSE_TRY_AGAIN, exc.message)
        return
    conn = WebsocketsConnection(ws, hub.settings.hub_send_queue)
    try:
        async with websocket_session(hub, conn, address) as session:
            await _read(ws, session, conn)
    finally:
        await conn.finish()


async def _read(ws: ServerConnection, session: Session, conn: WebsocketsConnection) -> None:
    try:
        while True:  # until ConnectionClosed: once we closed, read on to see the peer's answer
            message = await ws.recv()
            if conn.closed:
                continue
            if isinstance(message, str):
                await session.handle_text(message)
            else:
                session.handle_binary()
    except ConnectionClosed:
        pass
    except Exception as exc:
        # A store outage or a bug must not leave a connection that no longer reads.
        session_failed(session.hub, conn, exc)
    finally:
        conn.peer_closed(ws.close_code if ws.close_code is not None else 1006)


async def start_ws_server(
    hub: Hub,
    origins: OriginPolicy,
    *,
    max_size: int,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
) -> Server:
    """Listen for /v1/ws on host:port (or an already bound `sock`) with the hub's settings."""
    settings = hub.settings
    endpoint = WsEndpoint(hub, origins, max_size)
    where = {"sock": sock} if sock is not None else {"host": host, "port": port}
    return await serve(
        endpoint.handle,
        **where,
        process_request=endpoint.process_request,
        compression="deflate" if settings.hub_ws_compression else None,
        max_size=max_size,
        ping_interval=settings.hub_ping_interval,
        ping_timeout=settings.hub_ping_timeout,
        server_header=None,
        backlog=4096,
    )
