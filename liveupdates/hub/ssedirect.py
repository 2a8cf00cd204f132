"""Synchronous SSE writes straight into uvicorn's transport, one set of bytes for every reader.

The SSE twin of `connection.direct_writer` (WebSockets). Through ASGI, each event to each reader
cost a writer task waking up, the event encoded to bytes again, and a `send` passing the
middleware, Starlette's wrapper and uvicorn's h11 framing: measured against Pushpin
(bench/pushpin.py, README.md "Benchmarks") that was most of the hub's CPU per delivered SSE event
and, at 5,000 readers, most of its p99. An SSE event is the same bytes for every reader of a
channel, and so is its HTTP/1.1 chunk: it is framed once (`SharedChunk`) and written to each
stream with one `transport.write`, from the fan-out's pass, as the WebSocket path does.

Only the plain case is taken: uvicorn's h11 or httptools protocol (found behind the ASGI
`receive` callable, which no middleware here wraps), a GET answered with chunked transfer
encoding, after the response head went out through ASGI. Anything else and `direct_writer`
returns None: the queue and the ASGI `send` are always correct on their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.types import Receive, Scope

from liveupdates.hub.connection import SharedFrame

SSEWrite = Callable[[str], bool]


class SharedChunk(SharedFrame):
    """An event text as one HTTP/1.1 chunk: the fan-out hands one `str` (`Frame.sse`) to every
    SSE reader of a channel in turn."""

    __slots__ = ()

    def frame(self, text: str) -> bytes:
        data = text.encode()
        return b"%x\r\n%b\r\n" % (len(data), data)


class Stream(Protocol):
    """The SSE connection the writer writes for (sse.SSEConnection)."""

    wrote_at: float  # time.monotonic() of the stream's last write


_shared_chunk = SharedChunk()


def _chunked(cycle: Any) -> bool:
    """Whether uvicorn frames this response's body as HTTP/1.1 chunks (and will end it so)."""
    chunked = getattr(cycle, "chunked_encoding", None)  # httptools
    if chunked is not None:
        return chunked is True
    writer = getattr(getattr(cycle, "conn", None), "_writer", None)  # h11
    try:
        from h11._writers import ChunkedWriter
    except ImportError:  # pragma: no cover - an h11 whose internals moved
        return False
    return isinstance(writer, ChunkedWriter)


def direct_writer(scope: Scope, receive: Receive, stream: Stream) -> SSEWrite | None:
    """A synchronous event writer for this response, once its head is sent; None if unsure."""
    if scope.get("method") != "GET":
        return None
    cycle: Any = getattr(receive, "__self__", None)
    try:
        transport, flow, started = cycle.transport, cycle.flow, cycle.response_started
    except AttributeError:
        return None
    if not started or not _chunked(cycle):
        return None
    write_bytes = transport.write
    shared = _shared_chunk
    monotonic = time.monotonic

    def write(text: str) -> bool:
        # Only while uvicorn's flow control says the socket takes more: past that, events wait in
        # the connection's bounded queue, which is what detects a slow reader.
        if flow.write_paused or cycle.disconnected or cycle.response_complete:
            return False
        if transport.is_closing():
            return False
        write_bytes(shared.get(text))
        stream.wrote_at = monotonic()  # heartbeats come after silence only
        return True

    return write
