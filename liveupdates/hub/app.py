"""Building the Starlette app and serving it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from liveupdates.api.cors import PublicCORS
from liveupdates.api.routes import api_routes
from liveupdates.backends.errors import BACKEND_ERRORS
from liveupdates.bus.base import Bus
from liveupdates.gcpolicy import settle_after_startup
from liveupdates.hub import logfilter
from liveupdates.hub.core import SHUTDOWN_GRACE, Hub
from liveupdates.hub.edge import EdgeMiddleware, backend_unavailable
from liveupdates.hub.origins import OriginPolicy
from liveupdates.hub.rest import routes as rest_routes
from liveupdates.hub.sse import sse_endpoint
from liveupdates.hub.ws import websocket_endpoint
from liveupdates.settings import Settings
from liveupdates.store.base import Store

log = logging.getLogger("liveupdates")

Hook = Callable[[], Awaitable[Any]]
LifespanFactory = Callable[[Starlette], AbstractAsyncContextManager[Any]]

# Frames above hub_max_message_bytes get a `message_too_large` error; frames above this hard cap
# are refused by the protocol layer (close 1009) without being buffered whole.
MIN_HARD_FRAME_LIMIT = 64 * 1024


def hard_frame_limit(settings: Settings) -> int:
    return max(4 * settings.hub_max_message_bytes, MIN_HARD_FRAME_LIMIT)


def create_app(
    settings: Settings,
    store: Store,
    bus: Bus,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    on_startup: Iterable[Hook] = (),
    on_shutdown: Iterable[Hook] = (),
    lifespan: LifespanFactory | None = None,
    ws_host: str | None = None,
    ws_sock: socket.socket | None = None,
) -> Starlette:
    """The hub as an ASGI app. The caller owns `store` and `bus` (and closes them after).

    Startup runs `on_startup` hooks in order, then enters `lifespan(app)` if given (e.g. the
    poller). Shutdown first closes every client with 1012, then exits `lifespan`, then runs
    `on_shutdown` hooks in order. `app.state.hub` is the Hub (settings, store, bus, fan-out).

    With `settings.hub_ws_port` (on `ws_host`, default hub_host) or an already bound `ws_sock`,
    /v1/ws is also served by the `websockets` library's own server (hub/wsserver.py), started
    last at startup and stopped after the hub said 1012 at shutdown; `app.state.ws_server`.

    With `settings.hub_ws_front_door` (the default), `make_server`'s front door
    (hub/frontdoor.py) serves /v1/ws upgrades on the app's own port with the same handler, through
    `app.state.ws_door`, made at startup.
    """
    hub = Hub(settings, store, bus)
    origins = OriginPolicy(settings.hub_allowed_origins)
    startup, shutdown = list(on_startup), list(on_shutdown)

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in startup:
            await hook()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if lifespan is not None:
                    await stack.enter_async_context(lifespan(app))
                if ws_sock is not None or settings.hub_ws_port:
                    from liveupdates.hub.wsserver import start_ws_server

                    ws_server = await start_ws_server(
                        hub,
                        origins,
                        max_size=hard_frame_limit(settings),
                        host=ws_host or settings.hub_host,
                        port=settings.hub_ws_port,
                        sock=ws_sock,
                    )
                    app.state.ws_server = ws_server
                    stack.push_async_callback(_stop_ws_server, ws_server)
                if settings.hub_ws_front_door:
                    from liveupdates.hub.frontdoor import WsDoor
                    from liveupdates.hub.wsserver import WsEndpoint

                    door = WsDoor(WsEndpoint(hub, origins, hard_frame_limit(settings)))
                    app.state.ws_door = door
                    stack.push_async_callback(door.wait_closed)
                try:
                    yield
                finally:
                    app.state.ws_door = None  # new upgrades (keep-alive) go to the ASGI endpoint
                    await hub.shutdown()
        finally:
            for hook in shutdown:
                await hook()

    routes: list[BaseRoute] = [
        WebSocketRoute("/v1/ws", websocket_endpoint),
        # A bare ASGI app (see hub/sse.py), so the methods are named here.
        Route("/v1/sse", sse_endpoint, methods=["GET", "HEAD"]),
        *rest_routes,
        *api_routes(),
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=app_lifespan,
        middleware=[
            Middleware(EdgeMiddleware, hub=hub),
            Middleware(PublicCORS, origins=settings.hub_allowed_origins),
        ],
        exception_handlers={cls: backend_unavailable for cls in BACKEND_ERRORS},
    )
    app.state.hub = hub
    app.state.settings = settings
    app.state.origins = origins
    app.state.ws_server = None
    app.state.ws_door = None
    return app


async def _stop_ws_server(server: Any) -> None:
    # Its clients already heard 1012 from hub.shutdown; wait for their handlers to end.
    server.close(close_connections=False)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE)


class HubServer(uvicorn.Server):
    """uvicorn's Server, but clients hear 1012 before uvicorn waits for connections to end.

    Without this, open SSE streams would hold a graceful shutdown until its timeout.
    """

    def __init__(self, config: uvicorn.Config, hub: Hub, *, own_process: bool = False) -> None:
        super().__init__(config)
        self.hub = hub
        self.own_process = own_process

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.own_process:
            settle_after_startup()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while we say goodbye
        ws_server = getattr(getattr(self.config.app, "state", None), "ws_server", None)
        if ws_server is not None:
            ws_server.close(close_connections=False)  # nor on the websockets port
        await self.hub.shutdown()
        await super().shutdown(sockets)


def make_server(
    app: Starlette,
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
    own_process: bool = False,
    **uvicorn_options: Any,
) -> HubServer:
    """A uvicorn server for `app` with the hub's WebSocket settings (not started).

    `own_process`: the server is what this process is for (`serve`, `web`): once started, it sets
    the garbage collector for serving (liveupdates/gcpolicy.py)."""
    logfilter.install()
    warn_if_open_to_any_origin(settings, host or settings.hub_host)
    if settings.hub_ws_front_door and "http" not in uvicorn_options:
        from liveupdates.hub.frontdoor import FrontDoor

        uvicorn_options["http"] = FrontDoor
    config = uvicorn.Config(
        app,
        host=host or settings.hub_host,
        port=settings.hub_port if port is None else port,
        ws="websockets-sansio",
        ws_max_size=hard_frame_limit(settings),
        ws_ping_interval=settings.hub_ping_interval,
        ws_ping_timeout=settings.hub_ping_timeout,
        ws_per_message_deflate=settings.hub_ws_compression,
        lifespan="on",
        log_level=log_level,
        timeout_graceful_shutdown=10,
        **uvicorn_options,
    )
    return HubServer(config, app.state.hub, own_process=own_process)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def warn_if_open_to_any_origin(settings: Settings, host: str) -> None:
    """Any web page may then open /v1/ws and /v1/sse from its readers' browsers: say so once."""
    if not settings.hub_allowed_origins and not is_loopback(host):
        log.warning(
            "listening on %s with hub.allowed_origins empty: any web site's pages can connect"
            " to /v1/ws and /v1/sse; set hub.allowed_origins (LIVEUPDATES_HUB_ALLOWED_ORIGINS)"
            " to your sites' origins",
            host,
        )


def run(app: Starlette, settings: Settings, **options: Any) -> None:
    """Serve `app` on settings.hub_host:hub_port until interrupted (blocking)."""
    make_server(app, settings, **options).run()
