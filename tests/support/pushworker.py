"""A dispatcher process for the kill/restart and the two-process tests.

    python -m tests.support.pushworker BACKENDS_URL PREFIX OUT_FILE SECONDS_PER_SEND

Runs liveupdates' own dispatcher (run_dispatcher, as `liveupdates push` does) on the given
backends, with a provider standing in for the push service that appends one line per delivered
notification to OUT_FILE ("<device id> <seq>"), each line written whole before the send counts
as done. SECONDS_PER_SEND is the stand-in service's answer time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from liveupdates.backends import open_url
from liveupdates.models import Device
from liveupdates.push.model import Notification, SendResult
from liveupdates.push.service import run_dispatcher
from tests.support.pushapp import push_settings


class FileRecordingProvider:
    platform = "webpush"

    def __init__(self, path: str, delay: float) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.delay = delay

    async def send(self, device: Device, notification: Notification) -> SendResult:
        await asyncio.sleep(self.delay)
        os.write(self.fd, f"{device.id} {notification.seq}\n".encode())
        return SendResult("sent")

    async def aclose(self) -> None:
        os.close(self.fd)


async def main(url: str, prefix: str, out: str, delay: float) -> None:
    settings = push_settings(push_concurrency=16, push_scan_interval=0.1)
    backends = open_url(url, prefix=prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        provider = FileRecordingProvider(out, delay)
        async with run_dispatcher(settings, backends, {"webpush": provider}):
            print("dispatching", flush=True)
            await stop.wait()
    finally:
        await backends.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
