"""Prometheus metrics: the counters move where the work happens (poller, hub), /metrics serves them.

The registry is per process and shared by every test in it, so tests compare before and after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from liveupdates import metrics
from liveupdates.events import utcnow_iso
from liveupdates.hub.connection import QueuedConnection
from liveupdates.ingest import Ingestor
from liveupdates.metrics import RecentCounts, value
from liveupdates.models import FeedConfig
from liveupdates.runtime import make_fetcher
from liveupdates.settings import Settings
from liveupdates.store.sqlite import SQLiteStore
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.hubserver import HubServerHandle
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until


def test_recent_counts_keep_a_window_of_minutes() -> None:
    counts = RecentCounts(minutes=3)
    t0 = 1_950_000_000.0 - 1_950_000_000.0 % 60  # the start of a minute
    counts.add(2, now=t0)
    counts.add(1, now=t0 + 59)
    counts.add(5, now=t0 + 61)
    series = counts.series(now=t0 + 61)
    assert [m["count"] for m in series] == [0, 3, 5]
    assert series[-1]["minute"].endswith(":00Z")
    # Three minutes on, the first buckets are gone.
    counts.add(1, now=t0 + 240)
    assert [m["count"] for m in counts.series(now=t0 + 240)] == [0, 0, 1]


def test_frame_sent_counts_per_transport_and_times_once_per_update() -> None:
    ws, sse = (
        value("liveupdates_messages_sent_total", transport="ws"),
        value("liveupdates_messages_sent_total", transport="sse"),
    )
    timed = value("liveupdates_publish_to_send_seconds_count")
    metrics.frame_sent({"at": utcnow_iso()}, 3, 2)
    metrics.frame_sent({"at": "not a time"}, 1, 0)
    metrics.frame_sent({"at": utcnow_iso()}, 0, 0)  # nobody got it: not a send
    assert value("liveupdates_messages_sent_total", transport="ws") == ws + 4
    assert value("liveupdates_messages_sent_total", transport="sse") == sse + 2
    assert value("liveupdates_publish_to_send_seconds_count") == timed + 1


async def test_a_slow_client_dropped_is_counted_once() -> None:
    before = value("liveupdates_slow_clients_dropped_total")
    conn = QueuedConnection(limit=2)
    assert conn.send_text("a") and conn.send_text("b")
    assert not conn.send_text("c")  # overflow: closed as too slow
    assert not conn.send_text("d")
    assert value("liveupdates_slow_clients_dropped_total") == before + 1


async def test_polls_count_by_result_with_duration(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/m.xml", rss([bridge_story()]), etag=True)
    feed_server.set("/bad.xml", b"", status=500)
    store = SQLiteStore(tmp_path / "m.sqlite3")
    fetcher = make_fetcher(Settings(fetch_allow_networks=(ALLOW_LOOPBACK,)))
    ingestor = Ingestor(store, fetcher)
    ok, nm, err = (
        value("liveupdates_polls_total", result=r) for r in ("ok", "not_modified", "error")
    )
    published = value("liveupdates_updates_published_total")
    timed = value("liveupdates_poll_duration_seconds_count")
    try:
        good = FeedConfig(id="m", url=feed_server.url("/m.xml"))
        await ingestor.poll(good)
        await ingestor.poll(good)  # 304
        await ingestor.poll(FeedConfig(id="bad", url=feed_server.url("/bad.xml")))
    finally:
        await fetcher.aclose()
        await store.close()
    assert value("liveupdates_polls_total", result="ok") == ok + 1
    assert value("liveupdates_polls_total", result="not_modified") == nm + 1
    assert value("liveupdates_polls_total", result="error") == err + 1
    assert value("liveupdates_poll_duration_seconds_count") == timed + 3
    assert value("liveupdates_updates_published_total") == published + 1


async def test_hub_counts_clients_messages_and_latency(hub_server: HubServerHandle) -> None:
    clients = metrics.connected_clients()
    sent = value("liveupdates_messages_sent_total", transport="ws")
    timed = value("liveupdates_publish_to_send_seconds_count")
    await hub_server.publish("s1")
    async with hub_server.ws() as ws:
        await ws.subscribe("story:s1")
        assert metrics.connected_clients() == clients + 1
        await hub_server.publish("s1", extra={"at": utcnow_iso()})
        await ws.expect("update")
        assert value("liveupdates_messages_sent_total", transport="ws") == sent + 1
        assert value("liveupdates_publish_to_send_seconds_count") == timed + 1
    await until(
        lambda: metrics.connected_clients() == clients,
        timeout=5,
        message="the gauge did not come back down",
    )


async def test_sse_clients_are_counted(hub_server: HubServerHandle) -> None:
    before = value("liveupdates_connected_clients", transport="sse")
    await hub_server.publish("s2")
    async with (
        httpx.AsyncClient(base_url=hub_server.base_url, timeout=5) as client,
        client.stream("GET", "/v1/sse", params={"channel": "story:s2"}) as response,
    ):
        assert response.status_code == 200
        await until(
            lambda: value("liveupdates_connected_clients", transport="sse") == before + 1,
            timeout=5,
        )


def test_metrics_text_format_has_every_family() -> None:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.REGISTRY).decode()
    families: dict[str, Any] = {
        "liveupdates_polls_total": "counter",
        "liveupdates_poll_duration_seconds": "histogram",
        "liveupdates_updates_published_total": "counter",
        "liveupdates_connected_clients": "gauge",
        "liveupdates_messages_sent_total": "counter",
        "liveupdates_slow_clients_dropped_total": "counter",
        "liveupdates_publish_to_send_seconds": "histogram",
    }
    for name, kind in families.items():
        base = name.removesuffix("_total")
        # prometheus-client names a counter's family with or without _total depending on version
        assert f"# TYPE {base} {kind}" in text or f"# TYPE {name} {kind}" in text, name
