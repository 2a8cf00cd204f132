"""The /v1/ws endpoint: glue between a Starlette WebSocket, a Session and its writer."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from liveupdates.hub.connection import WebSocketConnection
from liveupdates.hub.core import RESTART_REASON, Hub
from liveupdates.hub.limits import Refused
from liveupdates.hub.protocol import CLOSE_POLICY, CLOSE_RESTART, CLOSE_TRY_AGAIN
from liveupdates.hub.session import Session, session_failed, websocket_session


async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    if not websocket.app.state.origins.allows(websocket.headers.get("origin")):
        # Closing before accept makes uvicorn answer the handshake with 403.
        await websocket.close(CLOSE_POLICY, "origin not allowed")
        return
    if hub.shutting_down:
        await websocket.close(CLOSE_RESTART, RESTART_REASON)
        return
    address = websocket.client.host if websocket.client else "unknown"
    try:
        hub.limits.acquire(address)
    except Refused as exc:
        # Accepted first so the client reads the code and when to retry (a refused handshake
        # would only say 403).
        await websocket.accept()
        await websocket.close(CLOSE_TRY_AGAIN, exc.message)
        return
    try:
        await websocket.accept()
    except BaseException:
        hub.limits.release(address)
        raise
    conn = WebSocketConnection(websocket, hub.settings.hub_send_queue)
    async with websocket_session(hub, conn, address) as session:
        reader = asyncio.create_task(_read(websocket, session, conn))
        try:
            await conn.run_writer()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _read(websocket: WebSocket, session: Session, conn: WebSocketConnection) -> None:
    receive = websocket.receive
    try:
        while not conn.closed:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                conn.peer_closed(message.get("code", 1005))
                return
            text = message.get("text")
            if text is not None:
                await session.handle_text(text)
            else:
                session.handle_binary()
    except (WebSocketDisconnect, OSError):
        conn.peer_closed(1006)
    except Exception as exc:
        # A store outage or a bug must not leave a connection that no longer reads.
        session_failed(session.hub, conn, exc)
