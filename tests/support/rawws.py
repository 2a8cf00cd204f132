"""A WebSocket client on a bare non-blocking socket, driven by websockets' sans-I/O protocol.

For what a well-behaved client library will not do: stop reading (a 4 KiB receive window, read
only when told) or send frames no library sends (invalid UTF-8 text).
"""

from __future__ import annotations

import asyncio
import socket

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.uri import parse_uri


class RawClient:
    """A WebSocket client on a bare socket with a tiny receive window: it reads only when told."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol

    @classmethod
    async def open(cls, port: int) -> RawClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/v1/ws"))
        protocol.send_request(protocol.connect())
        client = cls(sock, protocol)
        await client.flush()
        while protocol.state is not OPEN:
            await client.read_some()
        for event in protocol.events_received():
            assert isinstance(event, Response) and event.status_code == 101
        return client

    async def flush(self) -> None:
        await asyncio.get_running_loop().sock_sendall(
            self.sock, b"".join(self.protocol.data_to_send())
        )

    async def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        await self.flush()

    async def read_some(self) -> bool:
        """Read what is there (waits for some); False at end of stream or reset."""
        try:
            data = await asyncio.wait_for(
                asyncio.get_running_loop().sock_recv(self.sock, 1 << 20), 10
            )
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        return bool(data)

    async def texts_until(self, fragment: str) -> None:
        while True:
            for event in self.protocol.events_received():
                if event.opcode is Opcode.TEXT and fragment in event.data.decode():
                    return
            assert await self.read_some(), "stream ended"

    async def read_to_end(self) -> int | None:
        """Read everything until the server ends the stream; the close code it sent, if any."""
        while await self.read_some():
            self.protocol.events_received()
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else None

    def close(self) -> None:
        self.sock.close()

    async def send_frame(self, frame: Frame) -> None:
        """Any frame, as is (e.g. a TEXT frame whose bytes are not UTF-8)."""
        self.protocol.send_frame(frame)
        await self.flush()
