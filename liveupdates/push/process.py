"""`liveupdates push`: the dispatcher alone (Procfile `push:`), and `liveupdates push test`."""

from __future__ import annotations

import logging

from liveupdates.backends import check_reachable, open_backends
from liveupdates.gcpolicy import settle_after_startup
from liveupdates.metrics import start_metrics_server
from liveupdates.push.model import SendResult
from liveupdates.push.service import default_providers, run_dispatcher
from liveupdates.settings import Settings
from liveupdates.startup import stop_on_signals

log = logging.getLogger("liveupdates.push")


async def run_push_process(settings: Settings) -> None:
    """Dispatch until SIGINT / SIGTERM. With Redis, several of these share the work."""
    stop_metrics = start_metrics_server(settings)
    backends = open_backends(settings)
    stop = stop_on_signals()
    try:
        # Start-up mistakes are one line (StartupError, SettingsError), before any send.
        await check_reachable(backends, settings)
        providers = await default_providers(settings, backends)
        async with run_dispatcher(settings, backends, providers) as dispatcher:
            assert dispatcher is not None
            log.info(
                "push dispatching (%s mode; providers: %s)",
                backends.mode,
                ", ".join(sorted(providers)),
            )
            # A burst allocates per send (states, tasks, answers): with CPython's defaults it
            # set off full collections walking every start-up object, 3 in a 10,000-device
            # burst, ~4% of its CPU (bench/push.py).
            settle_after_startup()
            await stop.wait()
    finally:
        await backends.close()
        stop_metrics()


async def send_test(settings: Settings, device_id: str) -> SendResult:
    backends = open_backends(settings)
    try:
        providers = await default_providers(settings, backends)
        from liveupdates.push.dispatcher import Dispatcher

        dispatcher = Dispatcher(settings, backends.store, backends.devices, providers)
        try:
            return await dispatcher.send_test(device_id)
        finally:
            await dispatcher.aclose()
    finally:
        await backends.close()
