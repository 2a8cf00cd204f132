"""WebSub in scale-out mode: two `web` and two `worker` processes on one Redis.

Hubs call the callback on any web process; web processes have no scheduler, so they queue the
verified body in Redis and exactly one worker ingests it through the feed's poll path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from liveupdates.backends import open_url
from liveupdates.websub.signature import sign
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.processes import Processes, free_port, redis_env
from tests.support.stories import BRIDGE
from tests.support.websubhub import WebSubHub
from tests.test_scale_redis import Client, until
from tests.test_websub import LATER_PARAGRAPH, NEW_PARAGRAPH, feed_body


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture
def cluster(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    feed_server: FeedServer,
    ports: tuple[int, int],
) -> Iterator[Processes]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        f'[[feeds]]\nid = "gazette"\nurl = "{feed_server.url("/feed.xml")}"\n'
        "interval_seconds = 60\n"
    )
    env = redis_env(
        redis_url,
        redis_prefix,
        tmp_path,
        feeds,
        LIVEUPDATES_PUBLIC_URL=f"http://127.0.0.1:{ports[0]}",
        LIVEUPDATES_FETCH_TOTAL_TIMEOUT="2",
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
        LIVEUPDATES_HUB_DEMO="false",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.tails())


async def test_push_to_any_web_process_is_ingested_once(
    cluster: Processes,
    feed_server: FeedServer,
    websub_hub: WebSubHub,
    redis_url: str,
    redis_prefix: str,
    ports: tuple[int, int],
) -> None:
    topic = feed_server.url("/feed.xml")
    feed_server.set("/feed.xml", feed_body(BRIDGE[:2], hub=websub_hub.url, topic=topic))
    port_a, port_b = ports
    cluster.start("web-a", "web", "--port", str(port_a))
    cluster.start("web-b", "web", "--port", str(port_b))
    backends = open_url(redis_url, prefix=redis_prefix)
    store, wstore = backends.store, backends.websub
    clients: list[Client] = []
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def healthy(port: int) -> bool:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200

            for port in ports:
                await until(lambda p=port: healthy(p), f"web on {port}")
            # Workers after the web processes: the hub verifies through web A's callback.
            cluster.start("worker1", "worker")
            cluster.start("worker2", "worker")
            await until(
                lambda: _true(any(v.confirmed for v in websub_hub.verifications)),
                "subscription verified",
            )
            sub = await wstore.get("gazette")
            assert sub is not None
            await until(lambda: store.feed_stories("gazette"), "first poll stored")
            for port in ports:
                client = await Client.open(port)
                clients.append(client)
                await client.subscribe("feed:gazette")

            # The hub calls web A (the public URL)...
            second = feed_body([*BRIDGE[:2], NEW_PARAGRAPH], hub=websub_hub.url, topic=topic)
            assert await websub_hub.publish(topic, second) == [202]
            # ... and a retry of the same body, then the next change, reach web B.
            third = feed_body([*BRIDGE[:2], NEW_PARAGRAPH, LATER_PARAGRAPH], hub=websub_hub.url)
            callback_b = f"http://127.0.0.1:{port_b}/v1/websub/{sub.token}"
            for body in (second, third):
                answer = await http.post(
                    callback_b,
                    content=body,
                    headers={
                        "X-Hub-Signature": sign(sub.secret, body, "sha512"),
                        "Content-Type": "application/rss+xml",
                    },
                )
                assert answer.status_code == 202
            for client in clients:
                first_update = await client.update()
                next_update = await client.update()
                assert NEW_PARAGRAPH in json.dumps(first_update["event"]["diff"])
                assert LATER_PARAGRAPH in json.dumps(next_update["event"]["diff"])
                assert next_update["seq"] == first_update["seq"] + 1  # nothing twice
            [story] = await store.feed_stories("gazette")
            assert story.version == 3
            counted = await wstore.get("gazette")
            assert counted is not None and counted.pushes == 3
    finally:
        for client in clients:
            await client.close()
        await backends.close()


async def _true(value: bool) -> bool:
    return value
