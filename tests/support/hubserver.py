"""A real hub for tests: the Starlette app under real uvicorn on a free 127.0.0.1 port.

It runs as a task in the test's own event loop, over a SQLiteStore in tmp_path and an InMemoryBus,
so tests can drive updates (`publish`) without a poller and talk to it with real clients.

Fixtures:
- `hub_server`: a started HubServerHandle with default test settings.
- `start_hub_server`: `await start_hub_server(**settings_overrides, log_retention=...)` for more
  (each is stopped at teardown). With `websockets_transport=True`, /v1/ws is also served by the
  `websockets` library's own server (hub/wsserver.py) on a second port, and `ws_url` points there.
  With `redis=(url, prefix)` it runs in Redis mode instead (RedisStore + RedisBus under that
  prefix; the caller's `redis_prefix` fixture cleans up).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from liveupdates.bus import InMemoryBus
from liveupdates.bus.base import Bus
from liveupdates.hub import create_app, make_server
from liveupdates.hub.app import HubServer
from liveupdates.hub.core import Hub
from liveupdates.models import LogEntry, Snapshot, StoredVersion, feed_channel, story_channel
from liveupdates.settings import Settings
from liveupdates.store.base import Store
from liveupdates.store.sqlite import SQLiteStore
from tests.support.uvicorn_serving import bound_socket, serve_until_started

DEADLINE = 5.0  # seconds any single expected message may take

# Defaults that keep tests quick: fast heartbeats, generous rate limits.
TEST_SETTINGS: dict[str, Any] = {"hub_sse_heartbeat": 1.0, "hub_ping_interval": 5.0}


class HubServerHandle:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        *,
        websockets_transport: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self._ws_sock = bound_socket() if websockets_transport else None
        self.app = create_app(settings, store, bus, ws_sock=self._ws_sock)
        self.hub: Hub = self.app.state.hub
        self._sock = bound_socket()
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.asgi_ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.ws_port: int = self.port if self._ws_sock is None else self._ws_sock.getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/v1/ws"
        self.server: HubServer = make_server(
            self.app, settings, host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = await serve_until_started(self.server, self._sock, "hub server")

    async def stop(self) -> None:
        if self._task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 15)
            self._task = None
        self._sock.close()  # also when start() failed: it left no task
        if self._ws_sock is not None:
            self._ws_sock.close()

    async def publish(
        self,
        story_id: str,
        *,
        feed: str = "gazette",
        title: str | None = None,
        paragraphs: tuple[str, ...] = ("First paragraph.",),
        summary: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[LogEntry]:
        """Write the story's next version (store.append_version) and announce it (bus.publish),
        as the pipeline does. `extra` is merged into the event (e.g. to make big frames)."""
        latest = await self.store.latest(story_id)
        version = latest.version if latest else 0
        snap = Snapshot(
            id=story_id,
            feed=feed,
            url=f"https://gazette.example/news/{story_id}",
            title=title or f"{story_id} v{version + 1}",
            summary=summary if summary is not None else f"summary {version + 1}",
            paragraphs=paragraphs,
        )
        event: dict[str, Any] = {
            "kind": "updated" if version else "created",
            "story": {
                "id": story_id,
                "feed": feed,
                "url": snap.url,
                "title": snap.title,
                "version": version + 1,
            },
            "summary": f"version {version + 1}",
            "at": "2026-11-26T10:00:00Z",
        }
        if version:
            event["diff"] = {"title": {"from": latest.snapshot.title, "to": snap.title}}  # type: ignore[union-attr]
        if extra:
            event.update(extra)
        entries = await self.store.append_version(
            snap,
            f"hash-{story_id}-{version + 1}",
            version,
            [event],
            [story_channel(story_id), feed_channel(feed)],
        )
        await self.bus.publish(entries)
        return entries

    async def latest(self, story_id: str) -> StoredVersion | None:
        return await self.store.latest(story_id)

    @contextlib.asynccontextmanager
    async def ws(self, **options: Any) -> AsyncIterator[WSClient]:
        """A real `websockets` client connected to /v1/ws."""
        options.setdefault("max_size", None)
        async with connect(self.ws_url, **options) as conn:
            yield WSClient(conn)


class WSClient:
    """A thin JSON wrapper over a real `websockets` client connection."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.conn.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = DEADLINE) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.conn.recv(), timeout))

    async def expect(self, kind: str, timeout: float = DEADLINE) -> dict[str, Any]:
        message = await self.recv(timeout)
        assert message["type"] == kind, message
        return message

    async def subscribe(
        self, channel: str, since: int | None = None, epoch: str | None = None
    ) -> dict[str, Any]:
        """Send subscribe and return the `subscribed` answer (replay/reset frames follow it)."""
        request: dict[str, Any] = {"type": "subscribe", "channel": channel}
        if since is not None:
            request["since"] = since
        if epoch is not None:
            request["epoch"] = epoch
        await self.send(request)
        return await self.expect("subscribed")

    async def closed_with(self, timeout: float = DEADLINE) -> int | None:
        """Read until the server closes; the close code it sent."""

        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.conn.recv()

        await asyncio.wait_for(drain(), timeout)
        return self.conn.close_code


StartHub = Callable[..., Awaitable[HubServerHandle]]


@pytest.fixture
async def start_hub_server(tmp_path: Path) -> AsyncIterator[StartHub]:
    handles: list[tuple[HubServerHandle, Store]] = []

    async def start(
        *,
        log_retention: int | None = None,
        websockets_transport: bool = False,
        redis: tuple[str, str] | None = None,
        **overrides: Any,
    ) -> HubServerHandle:
        values = {**TEST_SETTINGS, **overrides}
        if log_retention:
            values["log_retention"] = log_retention
        settings = dataclasses.replace(Settings(), data_dir=str(tmp_path), **values)
        store: Store
        bus: Bus
        if redis is not None:
            from liveupdates.bus.redis import RedisBus
            from liveupdates.store.redis import RedisStore

            url, prefix = redis
            store = RedisStore(url, prefix=prefix, log_retention=log_retention)
            bus = RedisBus(url, store, backoff_max=0.5)
        else:
            store = SQLiteStore(
                tmp_path / f"hub{len(handles)}.sqlite3", log_retention=log_retention
            )
            bus = InMemoryBus(store)
        handle = HubServerHandle(settings, store, bus, websockets_transport=websockets_transport)
        handles.append((handle, store))
        await handle.start()
        return handle

    yield start
    for handle, store in reversed(handles):
        await handle.stop()
        await handle.bus.close()
        await store.close()


@pytest.fixture
async def hub_server(start_hub_server: StartHub) -> HubServerHandle:
    return await start_hub_server()
