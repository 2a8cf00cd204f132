"""The default port's front door: `/v1/ws` to the `websockets` library, everything else to uvicorn.

uvicorn takes an asyncio protocol class for HTTP (`uvicorn.Config(http=...)`); `FrontDoor` is that
class. It holds a new connection only until the request head has arrived, then hands the transport
to one of two protocols and steps out of the way:

- `GET /v1/ws` with `Upgrade: websocket`: a `websockets` `ServerConnection`, run by the same
  handler as the optional second port (hub/wsserver.py). A connection then costs what the bare
  `websockets` server costs (no ASGI scope, receive queue, middleware or Starlette objects): the
  memory and accept-rate figures in README.md, "Benchmarks".
- anything else (the page, SSE, REST, admin, metrics, and /v1/ws without an upgrade): uvicorn's own
  HTTP protocol, so the ASGI app, its middleware (CSP, request rates) and keep-alive are unchanged.
  A keep-alive connection that upgrades on a later request still reaches the ASGI endpoint
  (hub/ws.py), which speaks the same protocol.

`hub.ws_front_door = false` turns this off (every request then goes to uvicorn, as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.server import ServerProtocol

from liveupdates.hub.core import SHUTDOWN_GRACE
from liveupdates.hub.wsserver import WsEndpoint

# More than any real request head; past it without the end of the head, uvicorn answers it.
MAX_HEAD = 16 * 1024
WS_PATH = b"/v1/ws"

log = logging.getLogger("websockets.server")


def is_websocket_request(head: bytes) -> bool:
    """Whether a request head (up to its blank line) asks to upgrade /v1/ws. Pure."""
    line, _, headers = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    target = parts[1]
    if not (target == WS_PATH or target.startswith(WS_PATH + b"?")):
        return False
    for header in headers.split(b"\r\n"):
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


class WsDoor:
    """What the front door needs to open a `websockets` connection: one per app, made at startup.

    It plays the part of `websockets.asyncio.server.serve` without owning a listening socket:
    uvicorn owns that. Stopping is the hub's job (1012 to every client), then `wait_closed`.
    """

    def __init__(self, endpoint: WsEndpoint) -> None:
        self.endpoint = endpoint
        settings = endpoint.hub.settings
        self.extensions = (
            enable_server_permessage_deflate(None) if settings.hub_ws_compression else None
        )
        self.server = Server(self._never, self._run, log)
        # websockets asks its listener whether it still serves (a handshake during shutdown
        # gets 503): here, while the hub is not shutting down.
        self.server.server = _Listening(endpoint)  # type: ignore[assignment]

    async def _never(self) -> asyncio.Server:  # pragma: no cover - uvicorn listens, not we
        raise RuntimeError("the front door does not listen")

    def connection(self) -> ServerConnection:
        settings = self.endpoint.hub.settings
        protocol = ServerProtocol(
            extensions=self.extensions, max_size=self.endpoint.max_size, logger=log
        )
        return ServerConnection(
            protocol,
            self.server,
            ping_interval=settings.hub_ping_interval,
            ping_timeout=settings.hub_ping_timeout,
        )

    async def _run(self, connection: ServerConnection) -> None:
        """websockets' own per-connection procedure (`serve`'s protocol handler), our handler."""
        server = self.server
        try:
            async with asyncio.timeout(10):
                await connection.handshake(self.endpoint.process_request, None, None)
            if connection.protocol.state.name != "OPEN":
                connection.transport.abort()
                return
            server.all_connections.add(connection)
            connection.start_keepalive()
            try:
                async with connection:
                    await self.endpoint.handle(connection)
            except Exception:
                connection.logger.error("connection handler failed", exc_info=True)
            finally:
                server.all_connections.discard(connection)
        except Exception:
            # A handshake that timed out or failed: do not leak the connection.
            connection.transport.abort()
        finally:
            task = asyncio.current_task()
            if task is not None:
                server.handler_tasks.discard(task)

    async def wait_closed(self) -> None:
        """After the hub said 1012: wait (bounded) for the connection handlers to end."""
        tasks = set(self.server.handler_tasks)
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wait(tasks), SHUTDOWN_GRACE)


class _Listening:
    """The part of `asyncio.Server` websockets' handshake consults."""

    def __init__(self, endpoint: WsEndpoint) -> None:
        self.endpoint = endpoint

    def is_serving(self) -> bool:
        return not self.endpoint.hub.shutting_down


class FrontDoor(asyncio.Protocol):
    """uvicorn's `http` protocol class for the default port (see the module docstring)."""

    __slots__ = ("_args", "_head", "_transport")

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._args = (config, server_state, app_state, _loop)
        self._head = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        head = self._head + data if self._head else data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) < MAX_HEAD:
            self._head = head
            return
        self._head = b""
        self._hand_over(head, end)

    def eof_received(self) -> bool | None:
        # The client went away before finishing a request head: nothing to answer.
        if self._transport is not None:
            self._transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _hand_over(self, head: bytes, end: int) -> None:
        transport = self._transport
        if transport is None:
            return
        config, server_state, app_state, loop = self._args
        door: WsDoor | None = getattr(getattr(config.app, "state", None), "ws_door", None)
        protocol: asyncio.Protocol
        if door is not None and end >= 0 and is_websocket_request(head[:end]):
            protocol = door.connection()
        else:
            protocol = http_protocol_class()(
                config=config, server_state=server_state, app_state=app_state, _loop=loop
            )
        self._transport = None
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(head)


def http_protocol_class() -> Callable[..., asyncio.Protocol]:
    """uvicorn's HTTP protocol, as its `http="auto"` picks it (httptools if installed, else h11)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return AutoHTTPProtocol
