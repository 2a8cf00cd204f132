"""Assembling the processes: `liveupdates serve` (everything in one) and `liveupdates web`.

The hub (liveupdates/hub/) knows nothing about polling, ops or the demo; this module puts the pieces
on one Starlette app and decides what runs in its lifespan.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from liveupdates.bus.base import Bus
from liveupdates.hub.app import create_app, make_server
from liveupdates.ingest import Ingestor
from liveupdates.metrics import metrics_route
from liveupdates.ops.api import admin_page_routes, admin_routes
from liveupdates.ops.control import LocalControl
from liveupdates.runtime import make_fetcher, open_bus, open_store, seed_feeds
from liveupdates.settings import Settings
from liveupdates.store.base import Store
from liveupdates.store.websub import PushedBody

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
    store: Store,
    bus: Bus,
    *,
    with_poller: bool,
    self_url: str,
    ws_host: str | None = None,
    ws_sock: socket.socket | None = None,
) -> Starlette:
    """The full app. With `with_poller`, the scheduled poller runs inside the app's lifespan."""
    fetcher = make_fetcher(settings)
    ingestor = Ingestor(
        store,
        fetcher,
        publish=bus.publish,
        flipflop_window=settings.poll_flipflop_window,
        self_url=self_url,
    )
    control = LocalControl(ingestor)
    routes: list[BaseRoute] = [
        *page_routes(),
        *admin_page_routes(),
        *admin_routes(settings, store, control),
        metrics_route(),
    ]
    if settings.public_url:
        routes.extend(_websub_routes(settings, store, control if with_poller else None))
    if settings.hub_demo:
        from liveupdates.demo.feed import demo_routes

        routes.extend(demo_routes(settings.hub_demo_step))

    @contextlib.asynccontextmanager
    async def poller(app: Starlette) -> AsyncIterator[None]:
        try:
            if not with_poller:
                yield
                return
            from workers.main import running_poller

            await seed_feeds(store, settings)
            async with running_poller(
                settings, store, publish=bus.publish, self_url=self_url
            ) as scheduler:
                control.scheduler = scheduler
                yield
        finally:
            await fetcher.aclose()

    return create_app(
        settings, store, bus, extra_routes=routes, lifespan=poller, ws_host=ws_host, ws_sock=ws_sock
    )


def _websub_routes(
    settings: Settings, store: Store, control: LocalControl | None
) -> list[BaseRoute]:
    """The WebSub callback. With this process's own scheduler (`serve`) a pushed body is ingested
    here; a web-only process queues it in the store for the worker polling the feed."""
    from liveupdates.store.websub import websub_store_for
    from liveupdates.websub.callback import websub_routes

    wstore = websub_store_for(store)
    deliver = None
    if control is not None:

        async def deliver(feed_id: str, body: bytes, headers: Mapping[str, str]) -> object:
            scheduler = control.scheduler
            if scheduler is None:  # still starting: the queue is read once it runs
                await wstore.enqueue_push(PushedBody(feed_id, body, dict(headers), time.time()))
                return None
            return await scheduler.ingest_pushed(feed_id, body, headers)

    return websub_routes(
        wstore, store, max_body_bytes=settings.fetch_max_body_bytes, deliver=deliver
    )


def serve(
    settings: Settings, *, host: str | None = None, port: int | None = None, with_poller: bool
) -> None:
    """Run the app under uvicorn until interrupted; closes the backends on the way out."""
    import asyncio

    host = host or settings.hub_host
    port = settings.hub_port if port is None else port

    async def main() -> None:
        backends = await open_store(settings)
        bus = await open_bus(settings, backends.store)
        try:
            app = build_app(
                settings,
                backends.store,
                bus,
                with_poller=with_poller,
                self_url=f"http://{_url_host(host)}:{port}",
                ws_host=host,
            )
            await make_server(app, settings, host=host, port=port).serve()
        finally:
            await bus.close()
            await backends.close()

    asyncio.run(main())


def _url_host(host: str) -> str:
    """A host the process can reach itself on (0.0.0.0 listens everywhere; dial loopback)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
