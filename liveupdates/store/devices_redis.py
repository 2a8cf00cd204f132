"""The device-push store part on Redis, over the main store's client.

Keys (P = prefix + "push:"):

    P dev:<id>              hash    platform, address, keys (JSON), environment, secret, seen
    P addr:<platform>:<address>     str     the device id registered for that address
    P seen                  zset    device id -> last seen (unix), for expiry
    P platforms             hash    platform -> number of devices
    P subs:<id>             hash    channel -> notify, the device's subscriptions
    P fol:<channel>         zset    "<device id>\t<notify>" at score 0, paged by ZRANGEBYLEX
    P channels              hash    channel -> number of followers
    P cursors               hash    channel -> "<epoch> <seq>"
    P claim:<channel>       str     the owner (a process) reading the channel's log, with a TTL
    P st:<id>\t<story>      str     the coalescing state (JSON)
    P dst:<id>              set     story ids the device has states for
    P due                   zset    "<id>\t<story>" -> due time, or lease end while leased
    P vapid                 str     the VAPID private key (PEM), set once (SET NX)
    P stats                 hash    "<provider> <outcome>" -> count

States are updated optimistically (WATCH the page's state keys, MULTI, retry on a conflict), so
a dispatcher merging new events and another sending never lose each other's writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.exceptions import WatchError

from liveupdates.models import Device
from liveupdates.store.devices import (
    Cursor,
    DeviceRecord,
    Follower,
    FollowerPage,
    Notify,
    QueueStats,
    State,
    StateKey,
    StateUpdate,
    SubscriptionLimit,
)
from liveupdates.store.redis import RedisStore

SEP = "\t"
# States nobody touched for this long are dropped (their coalescing gap is long over).
STATE_TTL = 7 * 86400

# KEYS: 1 due zset. ARGV: 1 now, 2 limit, 3 lease end.
_TAKE = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(members) do
  redis.call('ZADD', KEYS[1], ARGV[3], m)
end
return members
"""

# KEYS: 1 subs hash, 2 fol zset, 3 channels hash. ARGV: 1 device, 2 channel, 3 notify, 4 limit.
_SUBSCRIBE = """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if not old then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
else
  redis.call('ZREM', KEYS[2], ARGV[1] .. '\\t' .. old)
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1] .. '\\t' .. ARGV[3])
return 1
"""

# KEYS: 1 subs hash, 2 fol zset, 3 channels hash. ARGV: 1 device, 2 channel.
_UNSUBSCRIBE = """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1] .. '\\t' .. old)
if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
return 1
"""

# KEYS: 1 claim key. ARGV: 1 owner, 2 milliseconds.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: 1 claim key. ARGV: 1 owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _due(state: State | None) -> float | None:
    if state is None or state.get("due") is None:
        return None
    return float(state["due"])


class RedisDeviceStore:
    def __init__(self, store: RedisStore) -> None:
        self.client = store.client
        self.p = f"{store.prefix}push:"
        self._take = self.client.register_script(_TAKE)
        self._subscribe = self.client.register_script(_SUBSCRIBE)
        self._unsubscribe = self.client.register_script(_UNSUBSCRIBE)
        self._claim = self.client.register_script(_CLAIM)
        self._release = self.client.register_script(_RELEASE)

    def _addr(self, device: Device) -> str:
        return f"{self.p}addr:{device.platform}:{device.address}"

    def _sub_keys(self, device_id: str, channel: str) -> list[str]:
        return [f"{self.p}subs:{device_id}", f"{self.p}fol:{channel}", f"{self.p}channels"]

    def _state_key(self, key: StateKey) -> str:
        return f"{self.p}st:{key[0]}{SEP}{key[1]}"

    # -- devices -----------------------------------------------------------------------------------

    async def register(self, device: Device, secret_hash: str, now: float) -> str:
        addr = self._addr(device)
        # SET NX decides which id the address gets, even when two registrations race.
        if await self.client.set(addr, device.id, nx=True):
            await self.client.hincrby(f"{self.p}platforms", device.platform, 1)
        found: Any = await self.client.get(addr)
        device_id: str = found or device.id
        await self.client.hset(
            f"{self.p}dev:{device_id}",
            mapping={
                "platform": device.platform,
                "address": device.address,
                "keys": json.dumps(device.keys, sort_keys=True),
                "environment": device.environment or "",
                "secret": secret_hash,
                "seen": repr(now),
            },
        )
        await self.client.zadd(f"{self.p}seen", {device_id: now})
        return device_id

    async def get(self, device_id: str) -> DeviceRecord | None:
        return (await self.get_many([device_id])).get(device_id)

    async def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        ids = list(dict.fromkeys(device_ids))
        if not ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for device_id in ids:
                pipe.hgetall(f"{self.p}dev:{device_id}")
            raws: list[Any] = await pipe.execute()
        out: dict[str, DeviceRecord] = {}
        for device_id, raw in zip(ids, raws, strict=True):
            if not raw or "secret" not in raw:
                continue
            device = Device(
                device_id,
                raw["platform"],
                raw["address"],
                json.loads(raw["keys"]),
                raw["environment"] or None,
            )
            out[device_id] = DeviceRecord(device, raw["secret"], float(raw["seen"]))
        return out

    async def touch(self, device_id: str, now: float) -> None:
        key = f"{self.p}dev:{device_id}"
        if await self.client.exists(key):
            await self.client.hset(key, "seen", repr(now))
            await self.client.zadd(f"{self.p}seen", {device_id: now}, gt=True)

    async def delete(self, device_id: str) -> bool:
        key = f"{self.p}dev:{device_id}"
        raw: Any = await self.client.hmget(key, ["platform", "address"])
        existed = raw[0] is not None
        channels: Any = await self.client.hkeys(f"{self.p}subs:{device_id}")
        for channel in channels:
            await self._unsubscribe(
                keys=self._sub_keys(device_id, channel), args=[device_id, channel]
            )
        stories: Any = await self.client.smembers(f"{self.p}dst:{device_id}")
        async with self.client.pipeline(transaction=True) as pipe:
            for story in stories:
                pipe.delete(self._state_key((device_id, story)))
                pipe.zrem(f"{self.p}due", f"{device_id}{SEP}{story}")
            pipe.delete(key, f"{self.p}dst:{device_id}", f"{self.p}subs:{device_id}")
            pipe.zrem(f"{self.p}seen", device_id)
            await pipe.execute()
        if existed:
            addr = f"{self.p}addr:{raw[0]}:{raw[1]}"
            # Only if it still names this device (a re-registration may have replaced it).
            if await self.client.get(addr) == device_id and await self.client.delete(addr):
                await self.client.hincrby(f"{self.p}platforms", raw[0], -1)
        return existed

    async def expire(self, seen_before: float) -> int:
        ids: Any = await self.client.zrangebyscore(f"{self.p}seen", "-inf", f"({seen_before!r}")
        count = 0
        for device_id in ids:
            count += await self.delete(device_id)
        return count

    async def platform_counts(self) -> dict[str, int]:
        raw: Any = await self.client.hgetall(f"{self.p}platforms")
        return {platform: int(n) for platform, n in raw.items() if int(n) > 0}

    # -- subscriptions -------------------------------------------------------------------------------

    async def subscribe(self, device_id: str, channel: str, notify: Notify, limit: int) -> None:
        done = await self._subscribe(
            keys=self._sub_keys(device_id, channel), args=[device_id, channel, notify, limit]
        )
        if not done:
            raise SubscriptionLimit(f"a device follows at most {limit} channels")

    async def unsubscribe(self, device_id: str, channel: str) -> bool:
        return bool(
            await self._unsubscribe(
                keys=self._sub_keys(device_id, channel), args=[device_id, channel]
            )
        )

    async def subscriptions(self, device_id: str) -> list[tuple[str, Notify]]:
        raw: Any = await self.client.hgetall(f"{self.p}subs:{device_id}")
        return sorted(raw.items())

    async def followers(self, channel: str, after: str | None, limit: int) -> FollowerPage:
        start = "-" if after is None else f"({after}"
        members: Any = await self.client.zrangebylex(
            f"{self.p}fol:{channel}", start, "+", start=0, num=limit
        )
        followers = []
        for member in members:
            device_id, _, notify = member.partition(SEP)
            followers.append(Follower(device_id, notify))
        more = len(members) == limit
        return FollowerPage(followers, members[-1] if more and members else None)

    async def channels(self) -> list[str]:
        names: Any = await self.client.hkeys(f"{self.p}channels")
        return sorted(names)

    # -- cursors and claims ----------------------------------------------------------------------------

    async def get_cursor(self, channel: str) -> Cursor | None:
        raw: Any = await self.client.hget(f"{self.p}cursors", channel)
        if not raw:
            return None
        epoch, _, seq = raw.rpartition(" ")
        return Cursor(epoch, int(seq))

    async def set_cursor(self, channel: str, cursor: Cursor) -> None:
        await self.client.hset(f"{self.p}cursors", channel, f"{cursor.epoch} {cursor.seq}")

    async def init_cursor(self, channel: str, cursor: Cursor) -> None:
        await self.client.hsetnx(f"{self.p}cursors", channel, f"{cursor.epoch} {cursor.seq}")

    async def claim_channel(self, channel: str, owner: str, seconds: float) -> bool:
        ms = max(1, int(seconds * 1000))
        return bool(await self._claim(keys=[f"{self.p}claim:{channel}"], args=[owner, ms]))

    async def release_channel(self, channel: str, owner: str) -> None:
        await self._release(keys=[f"{self.p}claim:{channel}"], args=[owner])

    # -- states ----------------------------------------------------------------------------------------

    async def update_states(
        self, keys: Sequence[StateKey], update: StateUpdate
    ) -> dict[StateKey, State | None]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        names = [self._state_key(k) for k in unique]
        due_key = f"{self.p}due"
        while True:
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*names)
                    raws = await pipe.mget(names)
                    olds = [json.loads(r) if r else None for r in raws]
                    news = [update(k, old) for k, old in zip(unique, olds, strict=True)]
                    pipe.multi()
                    for key, name, old, new in zip(unique, names, olds, news, strict=True):
                        member = f"{key[0]}{SEP}{key[1]}"
                        if new is None:
                            if old is not None:
                                pipe.delete(name)
                                pipe.zrem(due_key, member)
                                pipe.srem(f"{self.p}dst:{key[0]}", key[1])
                            continue
                        text = json.dumps(new, ensure_ascii=False, separators=(",", ":"))
                        pipe.set(name, text, ex=STATE_TTL)
                        if old is None:
                            pipe.sadd(f"{self.p}dst:{key[0]}", key[1])
                        due = _due(new)
                        if old is None or due != _due(old):
                            if due is None:
                                pipe.zrem(due_key, member)
                            else:
                                pipe.zadd(due_key, {member: due})
                    await pipe.execute()
                except WatchError:
                    continue
            return dict(zip(unique, news, strict=True))

    async def get_state(self, key: StateKey) -> State | None:
        raw = await self.client.get(self._state_key(key))
        return json.loads(raw) if raw else None

    async def take_due(self, now: float, limit: int, lease: float) -> list[tuple[StateKey, State]]:
        members: Any = await self._take(
            keys=[f"{self.p}due"], args=[repr(now), limit, repr(now + lease)]
        )
        if not members:
            return []
        keys: list[StateKey] = []
        for member in members:
            device_id, _, story_id = member.partition(SEP)
            keys.append((device_id, story_id))
        raws = await self.client.mget([self._state_key(k) for k in keys])
        out: list[tuple[StateKey, State]] = []
        for key, raw in zip(keys, raws, strict=True):
            if raw:
                out.append((key, json.loads(raw)))
            else:  # expired under it: nothing to send
                await self.client.zrem(f"{self.p}due", f"{key[0]}{SEP}{key[1]}")
        return out

    async def queue_stats(self) -> QueueStats:
        due_key = f"{self.p}due"
        depth = int(await self.client.zcard(due_key))
        first: Any = await self.client.zrange(due_key, 0, 0, withscores=True)
        # The score of a leased entry is its lease end; the state keeps the real due time.
        oldest = None
        if first:
            device_id, _, story_id = first[0][0].partition(SEP)
            state = await self.get_state((device_id, story_id))
            oldest = _due(state) if state else float(first[0][1])
        return QueueStats(depth, oldest)

    # -- keys and counters -----------------------------------------------------------------------------

    async def keep_vapid_key(self, private_pem: str) -> str:
        await self.client.set(f"{self.p}vapid", private_pem, nx=True)
        kept: Any = await self.client.get(f"{self.p}vapid")
        return str(kept or private_pem)

    async def count(self, provider: str, outcome: str, n: int = 1) -> None:
        await self.client.hincrby(f"{self.p}stats", f"{provider} {outcome}", n)

    async def counters(self) -> dict[str, dict[str, int]]:
        raw: Any = await self.client.hgetall(f"{self.p}stats")
        out: dict[str, dict[str, int]] = {}
        for name, n in raw.items():
            provider, _, outcome = name.partition(" ")
            out.setdefault(provider, {})[outcome] = int(n)
        return out
