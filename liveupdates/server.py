"""Assembling the processes: `liveupdates serve` (everything in one) and `liveupdates web`.

The hub (liveupdates/hub/) knows nothing about polling, ops or the demo; this module puts the pieces
on one Starlette app and decides what runs in its lifespan.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from liveupdates.backends import Backends, check_reachable, open_backends
from liveupdates.hub.app import create_app, make_server
from liveupdates.metrics import metrics_route
from liveupdates.ops.api import admin_page_routes, admin_routes
from liveupdates.ops.control import PollControl
from liveupdates.polling import RunPoller
from liveupdates.push.api import push_routes
from liveupdates.push.keys import vapid_key
from liveupdates.push.service import RunPush, admin_push_routes, key_source, run_dispatcher
from liveupdates.runtime import seed_feeds
from liveupdates.settings import Settings
from liveupdates.startup import listen_socket

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


async def _service_worker(request: Request) -> Response:
    # At the root, not under /static/: a service worker's scope is the path it is served from.
    return FileResponse(STATIC_DIR / "sw.js", media_type="text/javascript; charset=utf-8")


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", _index, methods=["GET"]),
        Route("/sw.js", _service_worker, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def build_app(
    settings: Settings,
    backends: Backends,
    *,
    run_poller: RunPoller | None = None,
    run_push: RunPush | None = None,
    self_url: str,
    ws_host: str | None = None,
    ws_sock: socket.socket | None = None,
) -> Starlette:
    """The full app. With `run_poller`, the process's scheduler runs inside the app's lifespan
    (`liveupdates serve`); without, polls are left to the workers (`liveupdates web`). With
    `run_push`, so does the device-push dispatcher (`serve`; else `liveupdates push` does).
    `app.state.push` is the running dispatcher, or None."""
    control = PollControl(backends, wait_seconds=settings.fetch_total_timeout + 5)
    routes: list[BaseRoute] = [
        *page_routes(),
        *admin_page_routes(),
        *push_routes(
            settings, backends.store, backends.devices, key_source(settings, backends.devices)
        ),
        *admin_push_routes(settings, backends.devices),
        *admin_routes(settings, backends.store, control, backends.websub),
        metrics_route(),
    ]
    if settings.public_url:
        routes.extend(_websub_routes(settings, backends, control))
    if settings.hub_demo:
        from liveupdates.demo.feed import demo_routes

        routes.extend(demo_routes(settings.hub_demo_step))

    @contextlib.asynccontextmanager
    async def poller(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app.state.push = None
            if run_push is not None:
                app.state.push = await stack.enter_async_context(run_push(settings, backends))
            if run_poller is None:
                yield
                return
            await seed_feeds(backends, settings)
            async with run_poller(settings, backends, self_url=self_url) as scheduler:
                control.poller = scheduler
                try:
                    yield
                finally:
                    control.poller = None

    return create_app(
        settings,
        backends.store,
        backends.bus,
        extra_routes=routes,
        lifespan=poller,
        ws_host=ws_host,
        ws_sock=ws_sock,
    )


def _websub_routes(settings: Settings, backends: Backends, control: PollControl) -> list[BaseRoute]:
    """The WebSub callback. Where this process runs the scheduler (`serve`) a verified push goes
    straight to its `ingest_pushed`; elsewhere (a `web` process, or `serve` still starting) it is
    queued in the store for a worker's WebSub manager."""
    from liveupdates.websub.callback import Deliver, websub_routes

    def local() -> Deliver | None:
        return control.poller.ingest_pushed if control.poller is not None else None

    return websub_routes(
        backends.websub, backends.store, max_body_bytes=settings.fetch_max_body_bytes, local=local
    )


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    run_poller: RunPoller | None = None,
) -> None:
    """Run the app under uvicorn until interrupted; closes the backends on the way out.

    Start-up mistakes are a StartupError (one line) before anything runs: the port(s) are bound
    first, then the store and the bus must answer, then (with the poller) the feeds file is read.
    """
    import asyncio

    host = host or settings.hub_host
    port = settings.hub_port if port is None else port
    sock = listen_socket(host, port, reuse_port=settings.hub_reuse_port)
    ws_sock = (
        listen_socket(host, settings.hub_ws_port, what="the WebSocket port (hub.ws_port)")
        if settings.hub_ws_port
        else None
    )

    async def main() -> None:
        backends = open_backends(settings)
        try:
            await check_reachable(backends, settings)
            # The VAPID key exists before the first request: an anonymous GET of the public key
            # must not be what creates it (and a bad configured key is one line here).
            await vapid_key(settings, backends.devices)
            if run_poller is not None:
                # Here, not in the app's lifespan: a bad feeds file is one line, not a traceback.
                await seed_feeds(backends, settings)
            app = build_app(
                settings,
                backends,
                run_poller=run_poller,
                # `serve` (with the poller) sends device push itself; `web` leaves it to `push`.
                run_push=run_dispatcher if run_poller is not None else None,
                self_url=f"http://{_url_host(host)}:{port}",
                ws_host=host,
                ws_sock=ws_sock,
            )
            # JSON logs: uvicorn's own text handlers would break the one-object-per-line stream,
            # so its loggers go through the root handler that configure_logging set up.
            options: dict[str, Any] = {"log_config": None} if settings.log_format == "json" else {}
            server = make_server(app, settings, host=host, port=port, own_process=True, **options)
            await server.serve(sockets=[sock])
        finally:
            await backends.close()

    try:
        asyncio.run(main())
    finally:
        sock.close()
        if ws_sock is not None:
            ws_sock.close()


def _url_host(host: str) -> str:
    """A host the process can reach itself on (0.0.0.0 listens everywhere; dial loopback)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
