"""One contract for the WebSub store part, run against SQLite and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from liveupdates.backends import Backends, open_url
from liveupdates.models import FeedConfig, PushedBody, WebSubSubscription
from liveupdates.store.base import Store
from liveupdates.store.websub import WebSubStore


@pytest.fixture(params=["sqlite", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, WebSubStore, WebSubStore]]:
    """The main store and two WebSub parts over it (as two processes would have)."""
    if request.param == "sqlite":
        url, prefix = f"sqlite://{tmp_path / 'ws.sqlite3'}", "lu:"
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    main: Backends = open_url(url, prefix=prefix)
    other: Backends = open_url(url, prefix=prefix)
    yield main.store, main.websub, other.websub
    await main.close()
    await other.close()


def _sub(feed_id: str = "gazette", **changes: object) -> WebSubSubscription:
    sub = WebSubSubscription(
        feed_id=feed_id,
        hub="https://hub.example/",
        topic="https://gazette.example/feed.xml",
        secret="s3cret",
        token=f"{feed_id}~" + "a" * 43,
        lease_seconds=600,
        requested_at=1000.0,
    )
    for name, value in changes.items():
        setattr(sub, name, value)
    return sub


async def test_put_get_list_delete(stores: tuple[Store, WebSubStore, WebSubStore]) -> None:
    _, ws, other = stores
    assert await ws.get("gazette") is None
    await ws.put(_sub())
    await ws.put(_sub("courier"))
    got = await other.get("gazette")
    assert got == _sub()
    assert [s.feed_id for s in await other.subscriptions()] == ["courier", "gazette"]
    await ws.delete("gazette")
    assert await other.get("gazette") is None
    assert [s.feed_id for s in await ws.subscriptions()] == ["courier"]


async def test_push_target_is_the_subscription_and_the_feed_in_one_read(
    stores: tuple[Store, WebSubStore, WebSubStore],
) -> None:
    store, ws, other = stores
    assert await ws.push_target("gazette") == (None, None)
    feed = FeedConfig(id="gazette", url="https://gazette.example/feed.xml", interval_seconds=60.0)
    await store.upsert_feed(feed)
    assert await ws.push_target("gazette") == (None, feed)  # a feed without a subscription
    await ws.put(_sub())
    await ws.record_push("gazette", valid=True, at="2026-11-30T10:00:00Z")
    sub, got = await other.push_target("gazette")
    assert got == feed and sub is not None and sub.pushes == 1
    assert sub == await other.get("gazette")
    await store.delete_feed("gazette")
    assert await ws.push_target("gazette") == (sub, None)  # a subscription outliving its feed


async def test_counters_survive_put_and_only_count_known(
    stores: tuple[Store, WebSubStore, WebSubStore],
) -> None:
    _, ws, other = stores
    await ws.record_push("ghost", valid=True, at="2026-11-30T10:00:00Z")
    assert await ws.get("ghost") is None  # a push for no subscription creates nothing
    await ws.put(_sub())
    await ws.record_push("gazette", valid=True, at="2026-11-30T10:00:00Z")
    await other.record_push("gazette", valid=True, at="2026-11-30T10:00:05Z")
    await other.record_push("gazette", valid=False, at="2026-11-30T10:00:06Z")
    await ws.put(_sub(state="active", expires_at=2000.0))
    got = await ws.get("gazette")
    assert got is not None
    assert (got.state, got.expires_at) == ("active", 2000.0)
    assert (got.pushes, got.bad_signatures, got.last_push_at) == (2, 1, "2026-11-30T10:00:05Z")


async def test_claim_action_is_granted_once(
    stores: tuple[Store, WebSubStore, WebSubStore],
) -> None:
    _, ws, other = stores
    results = await asyncio.gather(
        ws.claim_action("gazette", 30), other.claim_action("gazette", 30)
    )
    assert sorted(results) == [False, True]
    assert await ws.claim_action("courier", 30)  # per feed
    await ws.release_action("gazette")
    assert await other.claim_action("gazette", 30)


async def test_pushes_are_taken_once_in_order(
    stores: tuple[Store, WebSubStore, WebSubStore],
) -> None:
    _, ws, other = stores
    assert await ws.take_pushes(10, 0) == []
    for n in range(5):
        await ws.enqueue_push(
            PushedBody("gazette", b"\x00body %d\xff" % n, {"content-type": "text/xml"}, 1.5)
        )
    first, second = await asyncio.gather(ws.take_pushes(3, 0), other.take_pushes(3, 0))
    taken = first + second
    assert sorted(p.body for p in taken) == [b"\x00body %d\xff" % n for n in range(5)]
    assert [p.body for p in first] == sorted(p.body for p in first)
    assert all(p.headers == {"content-type": "text/xml"} and p.feed_id == "gazette" for p in taken)
    assert await ws.take_pushes(10, 0) == []


async def test_take_waits_for_a_push(stores: tuple[Store, WebSubStore, WebSubStore]) -> None:
    _, ws, other = stores
    waiting = asyncio.create_task(ws.take_pushes(5, 5.0))
    await other.enqueue_push(PushedBody("gazette", b"late", {}, 2.0))
    taken = await asyncio.wait_for(waiting, 6.0)
    assert [p.body for p in taken] == [b"late"]
