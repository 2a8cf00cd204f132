"""A real running service for the ops tests: the app `liveupdates serve` runs (server.build_app:
hub, admin API and page, /metrics, embedded poller), under real uvicorn on a free 127.0.0.1 port,
over a SQLite file, seeded from an empty feeds file.

It runs in a thread with its own event loop, so sync tests (the browser's Playwright) and async
tests (httpx, subprocesses) can both use it, and stopping it and starting another on the same
file is a real restart.

    with AdminService(tmp_path / "lu.sqlite3", admin_token="s3cret-0123456789") as svc:
        httpx.get(svc.url("/v1/admin/feeds"), headers=svc.auth)
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from liveupdates.backends import open_url
from liveupdates.hub import make_server
from liveupdates.server import build_app
from liveupdates.settings import Settings
from tests.support.feedserver import ALLOW_LOOPBACK
from tests.support.uvicorn_serving import bound_socket, serve_until_started
from workers.main import running_poller

START_TIMEOUT = 15.0

# Quick polls are allowed so tests can watch schedules move within seconds.
TEST_SETTINGS: dict[str, Any] = {
    "poll_min_interval": 0.2,
    "poll_jitter": 0.0,
    "hub_demo": False,
    "fetch_total_timeout": 5.0,
    "fetch_allow_networks": (ALLOW_LOOPBACK,),  # the tests' feed servers
}


class AdminService:
    def __init__(self, db_path: Path, **settings: Any) -> None:
        self.db_path = db_path
        # No seeding from config/feeds.toml: the tests start from an empty feed list.
        feeds_file = db_path.parent / "no-feeds.toml"
        feeds_file.write_text("")
        self.settings = dataclasses.replace(
            Settings(),
            data_dir=str(db_path.parent),
            feeds_file=str(feeds_file),
            **{**TEST_SETTINGS, **settings},
        )
        self.token = self.settings.admin_token or ""
        self._sock = bound_socket()
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> AdminService:
        self._thread = threading.Thread(target=self._run, name=f"admin:{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the service did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the service failed to start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(setattr, self._server, "should_exit", True)
        if self._thread is not None:
            self._thread.join(20)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> AdminService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        backends = open_url(f"sqlite://{self.db_path}")
        app = build_app(settings, backends, run_poller=running_poller, self_url=self.base_url)
        server = make_server(app, settings, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = server
        try:
            task = await serve_until_started(server, self._sock, "uvicorn")
            self._ready.set()
            await task
        finally:
            await backends.close()
