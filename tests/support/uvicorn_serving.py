"""Running a uvicorn server on a free 127.0.0.1 port, shared by the hub and admin test servers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free 127.0.0.1 port, for `server.serve(sockets=[...])`.

    Bound (not just picked) so the port is known before the server starts and nobody takes it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve_until_started(server: Any, sock: socket.socket, what: str) -> asyncio.Task[None]:
    """Start `server.serve` on `sock` as a task; return it once the server has started.

    A server that fails during startup raises its error here (or RuntimeError naming `what`).
    """
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError(f"{what} exited during startup")
        await asyncio.sleep(0.01)
    return task
