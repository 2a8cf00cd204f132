"""The lean receiver of the latency benchmarks: frames timestamped by the kernel as they arrive.

A `websockets` asyncio client spends tens of µs of its own CPU per frame (the protocol's parser,
waking the reader's task, the message assembler). With 500 connections per client process, on the
2 cores the server runs on, the last connection's frame of an update is read tens of ms after the
first: that is the load generator's queue, and it set the p99 the benchmarks used to report.

Here a connection is handed over after its handshake and subscribe (made with `websockets` as
before) to one thread that reads every socket with `epoll` and `recvmsg`, and each frame gets the
kernel's receive timestamp (`SO_TIMESTAMPNS`, CLOCK_REALTIME like `time.time()`): on loopback
that is taken while the server's `send` runs, so receipt - t0 is what the server took, whatever
the client's own CPU is doing. So the thread need not read at once: it looks at its sockets every
PAUSE and reads whatever arrived meanwhile, never blocking in `epoll_wait`. A server's `send` to
a socket whose reader waits there also wakes that reader up (on loopback, in the sender's own
system call): a cost a client on another machine never puts on the server. Reading in passes
spares the server those wake-ups and the client most of its CPU on the shared cores. (Should two
updates' frames reach one socket within a pass, one read returns both with the later frame's
time: the error is on the slow side, and at the benchmarks' pace of a few updates per second it
is rare.) The frame parsing is what a client needs of RFC 6455 from a
server: unmasked frames, pings answered with pongs (the hub closes a connection that does not),
a close frame ends the connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 does not name it
_CMSG_SPACE = socket.CMSG_SPACE(16)  # one struct timespec
_READ = 256 * 1024
_TEXT, _CLOSE, _PING = 0x1, 0x8, 0x9
PAUSE = 0.01  # s between passes over the sockets; no effect on the timestamps

OnFrame = Callable[[float, bytes], None]  # (kernel receive time, payload of a text frame)


def _frames(buf: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """The complete frames at the start of `buf` as (opcode, payload), and the bytes they use."""
    out: list[tuple[int, bytes]] = []
    pos, size = 0, len(buf)
    while size - pos >= 2:
        opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if size - pos < 4:
                break
            length, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
        elif length == 127:
            if size - pos < 10:
                break
            length, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
        if size - pos < head + length:
            break
        out.append((opcode, bytes(buf[pos + head : pos + head + length])))
        pos += head + length
    return out, pos


def _client_frame(opcode: int, payload: bytes) -> bytes:
    # A client's frames are masked (RFC 6455 §5.3); the zero key leaves the payload as it is.
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


class Receiver:
    """One thread reading many connections; `on_frame` is called in that thread."""

    def __init__(self, on_frame: OnFrame) -> None:
        self.on_frame = on_frame
        self._epoll = select.epoll()
        self._socks: dict[int, socket.socket] = {}
        self._bufs: dict[int, bytearray] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="receiver")
        self._thread.start()

    def add(self, sock: socket.socket) -> None:
        """Take over a connected, subscribed WebSocket (a socket of its own: the caller's is
        closed or forgotten)."""
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with self._lock:
            self._socks[sock.fileno()] = sock
            self._bufs[sock.fileno()] = bytearray()
        self._epoll.register(sock.fileno(), select.EPOLLIN)

    def alive(self) -> int:
        return len(self._socks)

    def _drop(self, fd: int) -> None:
        with self._lock:
            sock = self._socks.pop(fd, None)
            self._bufs.pop(fd, None)
        if sock is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
            sock.close()

    def _read(self, fd: int) -> None:
        sock, buf = self._socks.get(fd), self._bufs.get(fd)
        if sock is None or buf is None:
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(_READ, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd)
            return
        if not data:
            self._drop(fd)
            return
        stamp = time.time()
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                seconds, nanos = struct.unpack_from("qq", value)
                stamp = seconds + nanos / 1e9
        buf += data
        frames, used = _frames(buf)
        del buf[:used]
        for opcode, payload in frames:
            if opcode == _TEXT:
                self.on_frame(stamp, payload)
            elif opcode == _PING:
                with contextlib.suppress(OSError):
                    sock.send(_client_frame(0xA, payload))
            elif opcode == _CLOSE:
                self._drop(fd)
                return

    def _run(self) -> None:
        while not self._stop:
            for fd, _ in self._epoll.poll(0):
                self._read(fd)
            time.sleep(PAUSE)

    def close(self) -> int:
        """Close every connection (a close frame first) and stop; returns how many there were."""
        self._stop = True
        self._thread.join(timeout=5)
        count = len(self._socks)
        for fd, sock in list(self._socks.items()):
            with contextlib.suppress(OSError):
                sock.setblocking(True)
                sock.settimeout(1)
                sock.send(_client_frame(_CLOSE, struct.pack("!H", 1000)))
            self._drop(fd)
        self._epoll.close()
        return count
