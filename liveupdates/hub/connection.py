"""What the hub needs from a client connection, and its Starlette/uvicorn adapter.

The other adapter, for the `websockets` library's own server (`hub_ws_port`), is in wsserver.py.

The fan-out only ever calls `send_text` (synchronous, never waits) and `close`; the hub and the
session use nothing beyond the `Connection` interface, so a transport is one `QueuedConnection`
subclass (this module's, wsserver.py's, sse.py's) and the hub does not change with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from starlette.websockets import WebSocket
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.protocol import OPEN
from websockets.protocol import Protocol as SansIOProtocol

from liveupdates import metrics
from liveupdates.hub.protocol import CLOSE_TOO_SLOW

TOO_SLOW_REASON = "too slow; resume with since/epoch"
# How long we try to hand a close frame to a peer whose buffers may be full before aborting the
# socket (which frees everything queued for it).
CLOSE_TIMEOUT = 5.0
# A frame that cannot be handed to the transport for this long means the client stopped reading:
# it is closed with 4008 even if its queue never overflows (a quiet channel).
SEND_TIMEOUT = 10.0
# Frames a writer takes off the queue at once: small, so the queue length stays an honest measure
# of what the client has not yet taken.
WRITE_BATCH = 16


class FrameRun:
    """Consecutive text frames of one channel that the fan-out hands to every reader in one pass.

    A WebSocket reader that can take them now gets them in one write of their wire bytes, built
    once for all readers (no extensions: the bytes are the same for everyone). One write (one
    send() system call) per reader per pass instead of one per frame is most of what the fan-out
    gains over `websockets.broadcast` when updates come in bunches (README.md, "Benchmarks").
    """

    __slots__ = ("_wire", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = b"".join(
                WireFrame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
                for text in self.texts
            )
        return self._wire


@runtime_checkable
class Connection(Protocol):
    close_code: int | None

    def send_text(self, text: str) -> bool:
        """Queue a frame without waiting. False if the connection is closed or just overflowed."""
        ...

    def send_run(self, run: FrameRun) -> int:
        """`send_text` of each frame of `run` in order, without waiting; how many were taken."""
        ...

    async def send_paced(self, text: str) -> bool:
        """Queue a frame once there is room (replays, replies): a burst cannot overflow us."""
        ...

    def close(self, code: int, reason: str = "") -> None:
        """Start closing: queued frames are dropped, the transport is told `code`."""
        ...


class QueuedConnection:
    """A bounded queue of text frames in front of a transport, drained by one writer.

    The queue holds at most `limit` frames the client has not taken yet; the frame that would make it
    overflow closes the connection with 4008 instead, so a slow reader costs only its own memory
    and never delays anyone else's frames.

    Idle connections are the common case (bench: capacity), so the idle state is small: a plain
    list for the queue, a future only while the writer waits, events only once someone waits.
    """

    __slots__ = (
        "_closing",
        "_done",
        "_finished",
        "_queue",
        "_room",
        "_waiter",
        "close_code",
        "close_reason",
        "limit",
        "peer_gone",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.close_code: int | None = None
        self.close_reason = ""
        self.peer_gone = False  # the client went away: no close frame to send
        self._queue: list[str] = []
        self._waiter: asyncio.Future[None] | None = None  # the idle writer waits on this
        self._room: asyncio.Event | None = None  # created when a paced sender must wait
        self._finished: asyncio.Event | None = None  # created when someone waits for the end
        self._closing: asyncio.Future[None] | None = None  # created when a stuck send waits
        self._done = False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def send_text(self, text: str) -> bool:
        if self.close_code is not None:
            return False
        if len(self._queue) >= self.limit:
            self.close(CLOSE_TOO_SLOW, TOO_SLOW_REASON)
            return False
        self._queue.append(text)
        # Wake the writer once per batch, not once per frame.
        if self._waiter is not None:
            self._wake()
        return True

    def send_run(self, run: FrameRun) -> int:
        taken = 0
        for text in run.texts:
            if not self.send_text(text):
                break
            taken += 1
        return taken

    async def send_paced(self, text: str) -> bool:
        # Paced senders leave half the queue free for live frames of other channels.
        while self.close_code is None and len(self._queue) >= max(1, self.limit // 2):
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()
        return self.send_text(text)

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        if code == CLOSE_TOO_SLOW:
            metrics.slow_client_dropped()
        self._queue.clear()
        self._wake()
        if self._room is not None:
            self._room.set()
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(None)

    async def send_within_deadline(self, send: Awaitable[object]) -> bool:
        """Await a transport send that waits for room, until it is done (True), the connection
        is closed meanwhile (False), or SEND_TIMEOUT passes: then the client is not reading and
        is closed with 4008 (False). The send is cancelled in both failure cases."""
        task = asyncio.ensure_future(send)
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
        if self.close_code is None:
            waiters: set[asyncio.Future[Any]] = {task, self._closing}
            await asyncio.wait(waiters, timeout=SEND_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the transport's failure, if any, is the caller's to handle
            return self.close_code is None
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.close(CLOSE_TOO_SLOW, TOO_SLOW_REASON)
        return False

    def peer_closed(self, code: int = 1005) -> None:
        """The client closed or vanished: stop, with nothing more to send."""
        self.peer_gone = True
        self.close(code, "")

    async def next_batch(self, max_frames: int, timeout: float | None = None) -> list[str] | None:
        """Frames to write next; [] when `timeout` passed idle; None once the connection closed."""
        while not self._queue:
            if self.close_code is not None:
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await waiter
                else:
                    try:
                        await asyncio.wait_for(waiter, timeout)
                    except TimeoutError:
                        return []
            finally:
                self._waiter = None
        if self.close_code is not None:
            return None
        return self._take(max_frames)

    def _take(self, max_frames: int) -> list[str]:
        """Up to `max_frames` queued frames, now: a paced sender may then add more."""
        batch = self._queue[:max_frames]
        del self._queue[:max_frames]
        if self._room is not None:
            self._room.set()
        return batch

    async def wait_finished(self) -> None:
        if self._done:
            return
        if self._finished is None:
            self._finished = asyncio.Event()
        await self._finished.wait()

    def _mark_finished(self) -> None:
        self._done = True
        if self._finished is not None:
            self._finished.set()


DirectWrite = Callable[["str | FrameRun"], bool]


W = TypeVar("W", bound=Callable[[str], bool])


class DirectConnection(QueuedConnection, Generic[W]):
    """A `QueuedConnection` whose transport can also take a frame synchronously, from the
    fan-out's pass, without a writer waking up.

    `_direct` is the transport's writer (None: it has none, everything queues); it returns False
    when the transport cannot take the frame now, and the frame queues instead. It is used only
    while nothing is queued and the writer holds nothing taken off the queue (`_in_flight`), so a
    frame never overtakes an earlier one. This runs per reader per frame: keep it to these checks.
    """

    __slots__ = ("_direct", "_in_flight")

    def __init__(self, limit: int, direct: W | None = None) -> None:
        super().__init__(limit)
        self._direct = direct
        self._in_flight = False  # the writer holds frames not yet written: keep order, queue

    @property
    def writes_directly(self) -> bool:
        return self._direct is not None

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


class SharedFrame:
    """The wire bytes of the last text written, reused while the same text is written.

    The fan-out hands one `str` object to every reader of a channel in turn, and a transport
    frames it the same way for all of them: framing once per update instead of once per reader is
    what the fan-out profile asked for (README.md, "Benchmarks"). The text is matched by identity,
    not equality: comparing kilobytes per reader would cost what it saves. A transport subclasses
    this with its `frame`.
    """

    __slots__ = ("text", "wire")

    def __init__(self) -> None:
        self.text: str | None = None
        self.wire = b""

    def get(self, text: str) -> bytes:
        if text is not self.text:
            self.wire = self.frame(text)
            self.text = text
        return self.wire

    def frame(self, text: str) -> bytes:
        raise NotImplementedError


class _SharedWireFrame(SharedFrame):
    """A server WebSocket text frame: without extensions (permessage-deflate off, the default) it
    is the same bytes for every reader; websockets' send_text/send_frame/serialize was about a
    third of the per-reader cost."""

    __slots__ = ()

    def frame(self, text: str) -> bytes:
        return WireFrame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


_shared_frame = _SharedWireFrame()


def write_text_frame(protocol: SansIOProtocol, write: Callable[[bytes], object], text: str) -> bool:
    """Write one text frame of `protocol` (websockets' sans-I/O state) with `write`, now.

    Both WebSocket transports call this for their synchronous writes. False if the protocol
    cannot send now (not OPEN, mid-message): the caller queues the frame instead.
    """
    if protocol.state is not OPEN:
        return False
    if not protocol.extensions and not protocol.expect_continuation_frame:
        # Exactly what protocol.send_text would write, built once for all readers.
        write(_shared_frame.get(text))
        return True
    try:
        protocol.send_text(text.encode())
    except Exception:
        return False
    write(b"".join(protocol.data_to_send()))
    return True


def write_text_run(
    protocol: SansIOProtocol, write: Callable[[bytes], object], run: FrameRun
) -> bool:
    """Write every frame of `run` with one `write`, now, if `protocol` sends them as-is (OPEN, no
    extensions, not mid-message); False (nothing written) otherwise."""
    if protocol.state is not OPEN or protocol.extensions or protocol.expect_continuation_frame:
        return False
    write(run.wire)
    return True


def direct_writer(websocket: WebSocket) -> DirectWrite | None:
    """A synchronous frame writer straight into uvicorn's transport, when we can have one.

    Measured (README.md, "Benchmarks"), a synchronous write per client is about twice as cheap as
    waking a writer task per client per frame. ASGI offers only an async `send`, so this reaches
    into uvicorn's websockets-sansio protocol (found behind the ASGI `receive` callable, which
    Starlette does not wrap). Anything unexpected and it returns None: the queue-and-writer path
    is always correct on its own.
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - uvicorn without websockets
        return None
    proto = getattr(getattr(websocket, "_receive", None), "__self__", None)
    if not isinstance(proto, WebSocketsSansIOProtocol):
        return None
    try:
        ws, transport, writable = proto.conn, proto.transport, proto.writable
    except AttributeError:  # pragma: no cover - a uvicorn whose internals moved
        return None

    def write(item: str | FrameRun) -> bool:
        # Only while the socket buffer is below its high-water mark: past it, frames wait in our
        # bounded queue, which is what detects a slow reader.
        if (
            not writable.is_set()
            or proto.close_sent
            or proto.disconnected
            or transport.is_closing()
        ):
            return False
        # uvicorn flushes the protocol's output after every event, so nothing of its own waits
        # to go before this frame.
        if isinstance(item, FrameRun):
            return write_text_run(ws, transport.write, item)
        return write_text_frame(ws, transport.write, item)

    return write


class WebSocketConnection(DirectConnection[DirectWrite]):
    """Starlette (on uvicorn) WebSocket transport: `run_writer` is the connection's only writer.

    A frame is written synchronously when nothing is queued or in flight and the socket can take
    it; otherwise it joins the queue.
    """

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        super().__init__(limit, direct_writer(websocket))
        self.websocket = websocket
        self._transport = _uvicorn_transport(websocket)

    def send_run(self, run: FrameRun) -> int:
        direct = self._direct
        if (
            direct is not None
            and not self._in_flight
            and not self._queue
            and self.close_code is None
            and direct(run)
        ):
            return len(run.texts)
        return super().send_run(run)

    async def run_writer(self) -> None:
        """Write queued frames until closed, then send the close frame. Returns when done."""
        send = self.websocket.send  # raw ASGI send: skips per-frame state checks in send_text
        direct = self._direct
        try:
            while True:
                batch = await self.next_batch(WRITE_BATCH)
                if batch is None:
                    break
                self._in_flight = True
                for text in batch:
                    # A frame goes straight to the transport while it has room (the fan-out
                    # profile: a queued frame through ASGI send cost about twice a direct one);
                    # else send waits for room, which is exactly when the queue must absorb (and
                    # overflow) instead.
                    if direct is None or not direct(text):
                        sent = send({"type": "websocket.send", "text": text})
                        if not await self.send_within_deadline(sent):
                            break
                self._in_flight = False
        except Exception:  # WebSocketDisconnect, OSError, uvicorn's ClientDisconnected: peer gone
            self.peer_closed(1006)
        finally:
            await self._send_close()
            self._mark_finished()

    async def _send_close(self) -> None:
        if self.peer_gone:
            return
        code = self.close_code if self.close_code is not None else 1000
        try:
            # The close frame queues behind whatever the client has not read; a client that
            # never reads again must not hold this task forever.
            await asyncio.wait_for(
                self.websocket.send(
                    {"type": "websocket.close", "code": code, "reason": self.close_reason}
                ),
                CLOSE_TIMEOUT,
            )
        except TimeoutError:
            # Abort: drops the socket and the megabytes the kernel and uvicorn hold for it.
            if self._transport is not None:
                self._transport.abort()  # type: ignore[attr-defined]
        except Exception:  # the peer went away meanwhile: nothing to close
            pass


def _uvicorn_transport(websocket: WebSocket) -> asyncio.BaseTransport | None:
    """uvicorn's transport behind a Starlette WebSocket (see direct_writer), to abort it."""
    proto = getattr(getattr(websocket, "_receive", None), "__self__", None)
    transport = getattr(proto, "transport", None)
    return transport if callable(getattr(transport, "abort", None)) else None
