"""Scale-out end to end: 2 web + 2 worker processes on one Redis, fed by a loopback feed server.

Real subprocesses (`python -m liveupdates.cli web|worker`) configured only through the
environment, as the Procfile runs them. Checked: a change reaches a client on each web process
exactly once; polling goes on after a worker is killed; a restarted web process's client resumes
with since/epoch and misses nothing; a lost channel log gives resuming clients a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from liveupdates.models import story_channel
from liveupdates.store.redis import RedisStore
from tests.support import waiting
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.processes import ROOT, Processes, free_port, redis_env
from tests.support.stories import bridge_story, rss

START_DEADLINE = 20.0
UPDATE_DEADLINE = 20.0  # covers a worker taking over a killed worker's feed


class Client:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(await connect(f"ws://127.0.0.1:{port}/v1/ws", open_timeout=10))

    async def recv(self, timeout: float = UPDATE_DEADLINE) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.conn.recv(), timeout))

    async def subscribe(
        self, channel: str, since: int | None = None, epoch: str | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"type": "subscribe", "channel": channel}
        if since is not None:
            request.update(since=since, epoch=epoch)
        await self.conn.send(json.dumps(request))
        answer = await self.recv(10)
        assert answer["type"] == "subscribed", answer
        return answer

    async def update(self, timeout: float = UPDATE_DEADLINE) -> dict[str, Any]:
        message = await self.recv(timeout)
        assert message["type"] == "update", message
        return message

    async def closed_with(self, timeout: float) -> int | None:
        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.conn.recv()

        await asyncio.wait_for(drain(), timeout)
        return self.conn.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()


async def until(probe: Any, what: str, timeout: float = START_DEADLINE) -> Any:
    """Await `probe()` until it returns something truthy (errors count as not yet)."""

    async def attempt() -> Any:
        with contextlib.suppress(httpx.HTTPError, OSError):
            return await probe()
        return None

    return await waiting.until(attempt, timeout, f"{what}: not within {timeout:.0f}s", 0.1)


@pytest.fixture
def cluster(
    tmp_path: Path, redis_url: str, redis_prefix: str, feed_server: FeedServer
) -> Iterator[Processes]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        "[[feeds]]\n"
        'id = "gazette"\n'
        f'url = "{feed_server.url("/gazette.xml")}"\n'
        "interval_seconds = 1\n"
        "adaptive = false\n"
    )
    env = redis_env(
        redis_url,
        redis_prefix,
        tmp_path,
        feeds,
        LIVEUPDATES_POLL_MIN_INTERVAL="0.5",
        LIVEUPDATES_FETCH_TOTAL_TIMEOUT="2",
        LIVEUPDATES_HUB_DEMO="false",
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.tails())  # shown by pytest when the test failed


async def test_two_web_two_workers_on_redis(
    cluster: Processes, feed_server: FeedServer, redis_url: str, redis_prefix: str
) -> None:
    story = bridge_story()
    version = 1

    def change() -> None:
        nonlocal version
        version += 1
        feed_server.set("/gazette.xml", rss([story.with_(title=f"{story.title} ({version})")]))

    feed_server.set("/gazette.xml", rss([story]))
    port_a, port_b = free_port(), free_port()
    # Worker 1 starts alone, so it holds the feed: killing it later kills the holder.
    cluster.start("worker1", "worker")
    cluster.start("web-a", "web", "--port", str(port_a))
    cluster.start("web-b", "web", "--port", str(port_b))
    clients: list[Client] = []
    async with httpx.AsyncClient(timeout=5) as http:

        async def healthy(port: int) -> bool:
            return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200

        async def story_id() -> str | None:
            got = await http.get(f"http://127.0.0.1:{port_a}/v1/feeds/gazette/stories")
            stories = got.json().get("stories") if got.status_code == 200 else None
            return stories[0]["id"] if stories else None

        try:
            sid = await until(story_id, "the first poll's story on web A")
            cluster.start("worker2", "worker")
            await until(lambda: healthy(port_b), "web B up")
            channel = story_channel(sid)

            # A client on each web process gets the same update, once.
            a, b = await Client.open(port_a), await Client.open(port_b)
            clients += [a, b]
            sub_a, sub_b = await a.subscribe(channel), await b.subscribe(channel)
            assert sub_a["seq"] == sub_b["seq"] == 1 and sub_a["epoch"] == sub_b["epoch"]
            epoch = sub_a["epoch"]
            change()
            got_a, got_b = await a.update(), await b.update()
            assert got_a == got_b and got_a["seq"] == 2

            # The holding worker dies: the other one takes the feed over.
            cluster.stop("worker1", signal.SIGKILL)
            change()
            # The next frame is seq 3: seq 2 was not delivered twice.
            assert (await a.update())["seq"] == (await b.update())["seq"] == 3

            # Web B restarts; its client resumes and gets what it missed while B was down.
            cluster.stop("web-b")
            assert await b.closed_with(10) == 1012
            change()
            assert (await a.update())["seq"] == 4  # in the log while B is down
            cluster.start("web-b", "web", "--port", str(port_b))
            await until(lambda: healthy(port_b), "web B back")
            b = await Client.open(port_b)
            clients.append(b)
            resumed = await b.subscribe(channel, since=3, epoch=epoch)
            assert (resumed["recovered"], resumed["seq"], resumed["epoch"]) == (True, 4, epoch)
            replayed = await b.update(5)
            assert replayed["seq"] == 4
            assert replayed["event"]["story"]["title"].endswith("(4)")
            change()
            assert (await a.update())["seq"] == (await b.update())["seq"] == 5

            # The channel's log is lost: live clients are told to go (the web process sees the
            # new epoch), and resuming gives an honest reset, not a silent gap.
            store = RedisStore(redis_url, prefix=redis_prefix)
            try:
                await store.forget_channel(channel)
            finally:
                await store.close()
            assert await a.closed_with(10) == 4009
            a = await Client.open(port_a)
            clients.append(a)
            lost = await a.subscribe(channel, since=5, epoch=epoch)
            assert lost["recovered"] is False and lost["epoch"] != epoch
            reset = await a.recv(10)
            assert reset["type"] == "reset" and reset["snapshot"]["id"] == sid
            assert reset["snapshot"]["title"].endswith("(5)")
            change()
            after = await a.update()
            assert after["seq"] == lost["seq"] + 1
        finally:
            for client in clients:
                await client.close()


def test_procfile_runs_the_documented_commands() -> None:
    from liveupdates.cli import build_parser

    lines = (ROOT / "Procfile").read_text().splitlines()
    commands = dict(line.split(": ", 1) for line in lines if line.strip())
    assert commands == {
        "web": "liveupdates web --host 0.0.0.0 --port $PORT",
        "worker": "liveupdates worker",
        "push": "liveupdates push",
    }
    for command in commands.values():
        argv = command.replace("$PORT", "5000").split()[1:]
        assert build_parser().parse_args(argv).command in {"web", "worker", "push"}
