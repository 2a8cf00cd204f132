"""The scheduler as the rest of liveupdates sees it.

The scheduler itself (workers/poller.py `FeedScheduler`) lives with the background processes;
liveupdates/ never imports workers/ (only the `liveupdates` command wires them in). The web app,
the admin API and the WebSub callbacks talk to it through this Protocol, and a process builds it
through a `RunPoller` (workers.main.running_poller) handed to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from liveupdates.backends import Backends
from liveupdates.ingest import PollReport
from liveupdates.models import FeedConfig
from liveupdates.settings import Settings


class Poller(Protocol):
    async def poll_now(self, feed_id: str) -> PollReport | None:
        """Poll a stored feed now (paused or not), after any running poll of it, and plan the next
        poll from it; None if there is no such feed."""
        ...

    async def ingest_pushed(
        self,
        feed_id: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        feed: FeedConfig | None = None,
    ) -> PollReport | None:
        """Take a pushed body of an unpaused feed like a fetched one, holding the feed's claim;
        None if the feed is unknown or paused. `feed`: its config if the caller has read it."""
        ...

    async def sync(self, feeds: list[FeedConfig]) -> None:
        """Make the schedule match the feed list now."""
        ...


class RunPoller(Protocol):
    def __call__(
        self, settings: Settings, backends: Backends, *, self_url: str | None = None
    ) -> AbstractAsyncContextManager[Poller]:
        """Run the process's one scheduler over `backends` while the block lasts."""
        ...
