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

from liveupdates.backends import Backends, open_backends
from liveupdates.hub.app import create_app, make_server
from liveupdates.metrics import metrics_route
from liveupdates.ops.api import admin_page_routes, admin_routes
from liveupdates.ops.control import PollControl
from liveupdates.polling import RunPoller
from liveupdates.runtime import seed_feeds
from liveupdates.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", _index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def build_app(
    settings: Settings,
    backends: Backends,
    *,
    run_poller: RunPoller | None = None,
    self_url: str,
    ws_host: str | None = None,
    ws_sock: socket.socket | None = None,
) -> Starlette:
    """The full app. With `run_poller`, the process's scheduler runs inside the app's lifespan
    (`liveupdates serve`); without, polls are left to the workers (`liveupdates web`)."""
    control = PollControl(backends, wait_seconds=settings.fetch_total_timeout + 5)
    routes: list[BaseRoute] = [
        *page_routes(),
        *admin_page_routes(),
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
    """Run the app under uvicorn until interrupted; closes the backends on the way out."""
    import asyncio

    host = host or settings.hub_host
    port = settings.hub_port if port is None else port

    async def main() -> None:
        backends = open_backends(settings)
        try:
            app = build_app(
                settings,
                backends,
                run_poller=run_poller,
                self_url=f"http://{_url_host(host)}:{port}",
                ws_host=host,
            )
            # JSON logs: uvicorn's own text handlers would break the one-object-per-line stream,
            # so its loggers go through the root handler that configure_logging set up.
            options: dict[str, Any] = {"log_config": None} if settings.log_format == "json" else {}
            server = make_server(app, settings, host=host, port=port, **options)
            if settings.hub_reuse_port:
                await server.serve(sockets=[reuse_port_socket(host, port)])
            else:
                await server.serve()
        finally:
            await backends.close()

    asyncio.run(main())


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=4096, reuse_port=True)


def _url_host(host: str) -> str:
    """A host the process can reach itself on (0.0.0.0 listens everywhere; dial loopback)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
