"""One contract for the device-push store part, run against SQLite and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from liveupdates.backends import Backends, open_url
from liveupdates.models import Device
from liveupdates.store.devices import (
    Cursor,
    DeviceStore,
    Follower,
    State,
    StateKey,
    SubscriptionLimit,
)


@pytest.fixture(params=["sqlite", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[DeviceStore, DeviceStore]]:
    """Two device parts over the same data (as two processes would have)."""
    if request.param == "sqlite":
        url, prefix = f"sqlite://{tmp_path / 'dev.sqlite3'}", "lu:"
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    main: Backends = open_url(url, prefix=prefix)
    other: Backends = open_url(url, prefix=prefix)
    yield main.devices, other.devices
    await main.close()
    await other.close()


def web(n: int = 1, device_id: str | None = None) -> Device:
    return Device(
        device_id or f"dev{n:04d}",
        "webpush",
        f"https://push.example/send/{n}",
        {"p256dh": f"key{n}", "auth": f"auth{n}"},
    )


async def test_implements_the_protocol(stores: tuple[DeviceStore, DeviceStore]) -> None:
    assert isinstance(stores[0], DeviceStore)


async def test_register_get_and_reregister_keeps_the_id(
    stores: tuple[DeviceStore, DeviceStore],
) -> None:
    ds, other = stores
    assert await ds.get("nope") is None
    assert await ds.register(web(1), "hash-a", 100.0) == "dev0001"
    got = await other.get("dev0001")
    assert got is not None
    assert got.device == web(1)
    assert (got.secret_hash, got.seen_at) == ("hash-a", 100.0)
    # The same endpoint again, offered a new id: the old id, new secret and keys.
    again = Device("other-id", "webpush", web(1).address, {"p256dh": "k2", "auth": "a2"})
    assert await other.register(again, "hash-b", 200.0) == "dev0001"
    got = await ds.get("dev0001")
    assert got is not None
    assert (got.secret_hash, got.device.keys) == ("hash-b", {"p256dh": "k2", "auth": "a2"})
    assert await ds.get("other-id") is None
    apns = Device("dev-apns", "apns", "ab" * 32, {}, "sandbox")
    assert await ds.register(apns, "h", 1.0) == "dev-apns"
    got = await other.get("dev-apns")
    assert got is not None and got.device == apns
    assert await ds.platform_counts() == {"webpush": 1, "apns": 1}


async def test_get_many_reads_the_known_devices_of_a_page_at_once(
    stores: tuple[DeviceStore, DeviceStore],
) -> None:
    ds, other = stores
    assert await ds.get_many([]) == {}
    for i in range(1, 1203):  # more ids than one SQL statement takes
        await ds.register(web(i), f"hash-{i}", float(i))
    wanted = [f"dev{i:04d}" for i in range(1, 1203)] + ["nope", "dev0007"]
    got = await other.get_many(wanted)
    assert set(got) == {f"dev{i:04d}" for i in range(1, 1203)}
    assert got["dev0007"].device == web(7)
    assert (got["dev1202"].secret_hash, got["dev1202"].seen_at) == ("hash-1202", 1202.0)


async def test_subscriptions_limit_and_followers(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    await ds.register(web(1), "h", 1.0)
    await ds.subscribe("dev0001", "story:a", "major", 2)
    await ds.subscribe("dev0001", "feed:f", "all", 2)
    with pytest.raises(SubscriptionLimit):
        await other.subscribe("dev0001", "story:b", "major", 2)
    # Changing how a followed channel is notified is no new subscription.
    await other.subscribe("dev0001", "story:a", "all", 2)
    assert await ds.subscriptions("dev0001") == [("feed:f", "all"), ("story:a", "all")]
    page = await ds.followers("story:a", None, 10)
    assert page.followers == [Follower("dev0001", "all")]
    assert page.next_after is None
    assert await other.channels() == ["feed:f", "story:a"]
    assert await ds.unsubscribe("dev0001", "story:a") is True
    assert await ds.unsubscribe("dev0001", "story:a") is False
    assert (await ds.followers("story:a", None, 10)).followers == []
    assert await other.channels() == ["feed:f"]


async def test_followers_are_paged_without_repeats(
    stores: tuple[DeviceStore, DeviceStore],
) -> None:
    ds, other = stores
    for n in range(25):
        await ds.register(web(n), "h", 1.0)
        await ds.subscribe(f"dev{n:04d}", "story:big", "major" if n % 2 else "all", 5)
    seen: list[Follower] = []
    after: str | None = None
    pages = 0
    while True:
        page = await other.followers("story:big", after, 10)
        assert len(page.followers) <= 10
        seen.extend(page.followers)
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert pages >= 3
    assert sorted(f.device_id for f in seen) == [f"dev{n:04d}" for n in range(25)]
    assert {f.device_id: f.notify for f in seen}["dev0003"] == "major"


async def test_delete_forgets_device_subscriptions_and_states(
    stores: tuple[DeviceStore, DeviceStore],
) -> None:
    ds, other = stores
    await ds.register(web(1), "h", 1.0)
    await ds.subscribe("dev0001", "story:a", "major", 5)
    await ds.update_states([("dev0001", "a")], lambda k, s: {"due": 5.0, "n": 1})
    assert await other.delete("dev0001") is True
    assert await other.delete("dev0001") is False
    assert await ds.get("dev0001") is None
    assert await ds.subscriptions("dev0001") == []
    assert (await ds.followers("story:a", None, 10)).followers == []
    assert await ds.channels() == []
    assert await ds.get_state(("dev0001", "a")) is None
    assert await ds.take_due(10.0, 10, 30.0) == []
    # The address is free again: registering it makes a new device.
    assert await ds.register(web(1, "fresh"), "h", 2.0) == "fresh"


async def test_expire_drops_devices_not_seen(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    await ds.register(web(1), "h", 100.0)
    await ds.register(web(2), "h", 100.0)
    await ds.subscribe("dev0001", "story:a", "major", 5)
    await other.touch("dev0002", 500.0)
    assert await ds.expire(300.0) == 1
    assert await ds.get("dev0001") is None
    got = await ds.get("dev0002")
    assert got is not None and got.seen_at == 500.0
    assert await ds.channels() == []


async def test_cursor_set_and_init_if_absent(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    assert await ds.get_cursor("story:a") is None
    await ds.init_cursor("story:a", Cursor("e1", 4))
    await other.init_cursor("story:a", Cursor("e1", 9))
    assert await ds.get_cursor("story:a") == Cursor("e1", 4)
    await other.set_cursor("story:a", Cursor("e 2", 7))
    assert await ds.get_cursor("story:a") == Cursor("e 2", 7)


async def test_channel_claim_is_held_by_one(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    assert await ds.claim_channel("story:a", "one", 30.0) is True
    assert await other.claim_channel("story:a", "two", 30.0) is False
    assert await ds.claim_channel("story:a", "one", 30.0) is True  # extended by its owner
    assert await other.claim_channel("story:b", "two", 30.0) is True
    await other.release_channel("story:a", "two")  # not its claim: nothing happens
    assert await other.claim_channel("story:a", "two", 30.0) is False
    await ds.release_channel("story:a", "one")
    assert await other.claim_channel("story:a", "two", 30.0) is True


async def test_states_update_and_queue(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    keys: list[StateKey] = [("d1", "a"), ("d2", "a"), ("d1", "b")]

    def first(key: StateKey, old: State | None) -> State | None:
        assert old is None
        return {"due": 10.0 if key[0] == "d1" else 20.0, "n": 1}

    out = await ds.update_states(keys, first)
    assert out[("d1", "b")] == {"due": 10.0, "n": 1}
    assert (await other.queue_stats()).depth == 3
    assert (await other.queue_stats()).oldest_due == 10.0
    assert await other.take_due(5.0, 10, 30.0) == []
    taken = await other.take_due(15.0, 10, 30.0)
    assert sorted(k for k, _ in taken) == [("d1", "a"), ("d1", "b")]
    # Leased: nobody else gets them, even when due.
    assert await ds.take_due(16.0, 10, 30.0) == []
    # An update that keeps the due time keeps the lease; one that changes it ends the lease.
    await ds.update_states([("d1", "a")], lambda k, s: {**(s or {}), "n": 2})
    assert await ds.take_due(17.0, 10, 30.0) == []
    await ds.update_states([("d1", "a")], lambda k, s: {**(s or {}), "due": 17.0})
    assert [k for k, _ in await ds.take_due(18.0, 10, 30.0)] == [("d1", "a")]
    # A lease that ran out hands the state out again.
    assert sorted(k for k, _ in await other.take_due(46.0, 10, 30.0)) == [("d1", "b"), ("d2", "a")]
    # Nothing due: out of the queue; None: gone.
    await ds.update_states([("d1", "b")], lambda k, s: {**(s or {}), "due": None})
    await ds.update_states([("d2", "a")], lambda k, s: None)
    assert await ds.get_state(("d2", "a")) is None
    assert await ds.get_state(("d1", "b")) == {"due": None, "n": 1}
    assert (await ds.queue_stats()).depth == 1


async def test_concurrent_updates_lose_nothing(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores

    def bump(key: StateKey, old: State | None) -> State:
        return {"due": None, "n": (old or {}).get("n", 0) + 1}

    await asyncio.gather(
        *(s.update_states([("d", "x")], bump) for _ in range(10) for s in (ds, other))
    )
    assert await ds.get_state(("d", "x")) == {"due": None, "n": 20}


async def test_vapid_key_is_kept_once(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    assert await ds.keep_vapid_key("pem-one") == "pem-one"
    assert await other.keep_vapid_key("pem-two") == "pem-one"


async def test_counters(stores: tuple[DeviceStore, DeviceStore]) -> None:
    ds, other = stores
    assert await ds.counters() == {}
    await ds.count("webpush", "sent")
    await other.count("webpush", "sent", 2)
    await other.count("apns", "removed")
    assert await ds.counters() == {"webpush": {"sent": 3}, "apns": {"removed": 1}}
