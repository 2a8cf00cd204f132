"""Device push as a part of a process: the dispatcher's lifetime, the VAPID key for the API,
and the numbers ops see (/v1/admin/push, Prometheus)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveupdates import metrics
from liveupdates.backends import Backends
from liveupdates.models import PLATFORMS, Platform
from liveupdates.ops.auth import AuthError, configured_tokens, token_name
from liveupdates.push.dispatcher import Dispatcher
from liveupdates.push.keys import vapid_key
from liveupdates.push.model import Provider
from liveupdates.push.providers import build_providers
from liveupdates.settings import Settings
from liveupdates.store.devices import DeviceStore

log = logging.getLogger("liveupdates.push")

# How often the dispatcher refreshes the store-wide gauges (device counts, queue).
GAUGES_EVERY = 15.0

RunPush = Callable[[Settings, Backends], AbstractAsyncContextManager[Dispatcher | None]]


def key_source(settings: Settings, devices: DeviceStore) -> Callable[[], Any]:
    """The public VAPID key, read (or made and kept) once per process."""
    cached: list[str] = []

    async def public_key() -> str:
        if not cached:
            cached.append((await vapid_key(settings, devices)).public_key_b64url())
        return cached[0]

    return public_key


async def default_providers(settings: Settings, backends: Backends) -> Mapping[Platform, Provider]:
    return build_providers(settings, await vapid_key(settings, backends.devices))


@contextlib.asynccontextmanager
async def run_dispatcher(
    settings: Settings,
    backends: Backends,
    providers: Mapping[Platform, Provider] | None = None,
) -> AsyncIterator[Dispatcher | None]:
    """Run a dispatcher in this process while the block runs (`serve`, `push`)."""
    if providers is None:
        providers = await default_providers(settings, backends)
    dispatcher = Dispatcher(
        settings, backends.store, backends.devices, providers, observe=metrics.push_outcome
    )

    async def gauges() -> None:
        while True:
            with contextlib.suppress(Exception):
                status = await push_status(backends.devices)
                metrics.push_state(
                    status["devices"],
                    status["queue"]["depth"],
                    status["queue"]["oldest_pending_age_seconds"],
                )
            await asyncio.sleep(GAUGES_EVERY)

    tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(gauges())]
    try:
        yield dispatcher
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await dispatcher.aclose()


async def push_status(devices: DeviceStore, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    counts = await devices.platform_counts()
    counters = await devices.counters()
    queue = await devices.queue_stats()
    overdue = 0.0 if queue.oldest_due is None else max(0.0, now - queue.oldest_due)
    platforms = PLATFORMS
    return {
        "devices": {p: counts.get(p, 0) for p in platforms},
        "providers": {
            p: {o: counters.get(p, {}).get(o, 0) for o in ("sent", "failed", "removed")}
            for p in platforms
        },
        "queue": {"depth": queue.depth, "oldest_pending_age_seconds": round(overdue, 3)},
    }


def admin_push_routes(settings: Settings, devices: DeviceStore) -> list[BaseRoute]:
    """GET /v1/admin/push (admin token), listed before the admin API's catch-all."""

    async def admin_push(request: Request) -> Response:
        try:
            token_name(configured_tokens(settings), request.headers.get("authorization"))
        except AuthError as exc:
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status
            )
        return JSONResponse(await push_status(devices))

    return [Route("/v1/admin/push", admin_push, methods=["GET"])]
