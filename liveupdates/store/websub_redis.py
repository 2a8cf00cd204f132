"""The WebSub store part on Redis, over the main store's client.

Keys (P = prefix):

    P websub:subs               set   feed ids that have a subscription
    P websub:sub:<feed id>      hash  sub (WebSubSubscription JSON without counters), pushes,
                                      bad_signatures, last_push_at
    P websub:act:<feed id>      str   held (SET NX PX) by the process acting on the subscription
    P websub:pushes             list  queued pushed bodies (JSON, body in base64), oldest first

Every command touches one key, so this works on Redis Cluster too. The queue is one list taken
with LPOP/BLPOP: each entry goes to exactly one worker.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any

from liveupdates.models import FeedConfig, PushedBody, WebSubSubscription
from liveupdates.store.redis import RedisStore

_COUNTERS = ("pushes", "bad_signatures", "last_push_at")


class RedisWebSubStore:
    def __init__(self, store: RedisStore) -> None:
        self.client = store.client
        self.prefix = f"{store.prefix}websub:"
        self._feeds = store.feeds_key  # the main store's feed configs (RedisStore.get_feed)

    def _key(self, feed_id: str) -> str:
        return f"{self.prefix}sub:{feed_id}"

    @staticmethod
    def _decode(feed_id: str, raw: dict[str, Any]) -> WebSubSubscription | None:
        if not raw.get("sub"):
            return None
        return WebSubSubscription(
            **json.loads(raw["sub"]),
            pushes=int(raw.get("pushes") or 0),
            bad_signatures=int(raw.get("bad_signatures") or 0),
            last_push_at=raw.get("last_push_at") or None,
        )

    async def get(self, feed_id: str) -> WebSubSubscription | None:
        raw: Any = await self.client.hgetall(self._key(feed_id))  # str keys: decode_responses
        return self._decode(feed_id, raw)

    async def push_target(
        self, feed_id: str
    ) -> tuple[WebSubSubscription | None, FeedConfig | None]:
        # Two keys, one round trip (a pipeline, not a transaction: each command one key).
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(feed_id))
            pipe.hget(self._feeds, feed_id)
            raw, feed = await pipe.execute()
        config = FeedConfig(**json.loads(feed)) if feed is not None else None
        return self._decode(feed_id, raw), config

    async def subscriptions(self) -> list[WebSubSubscription]:
        ids: list[str] = sorted(await self.client.smembers(f"{self.prefix}subs"))  # type: ignore[arg-type]
        subs = []
        for feed_id in ids:
            sub = await self.get(feed_id)
            if sub is not None:
                subs.append(sub)
        return subs

    async def put(self, sub: WebSubSubscription) -> None:
        data = {k: v for k, v in asdict(sub).items() if k not in _COUNTERS}
        await self.client.hset(self._key(sub.feed_id), "sub", json.dumps(data, ensure_ascii=False))
        await self.client.sadd(f"{self.prefix}subs", sub.feed_id)

    async def delete(self, feed_id: str) -> None:
        await self.client.delete(self._key(feed_id))
        await self.client.srem(f"{self.prefix}subs", feed_id)

    async def record_push(self, feed_id: str, *, valid: bool, at: str) -> None:
        key = self._key(feed_id)
        if not await self.client.hexists(key, "sub"):
            return  # deleted meanwhile: never recreate a half record
        if valid:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "pushes", 1)
                pipe.hset(key, "last_push_at", at)
                await pipe.execute()
        else:
            await self.client.hincrby(key, "bad_signatures", 1)

    async def claim_action(self, feed_id: str, seconds: float) -> bool:
        ms = max(1, int(seconds * 1000))
        return bool(await self.client.set(f"{self.prefix}act:{feed_id}", "1", nx=True, px=ms))

    async def release_action(self, feed_id: str) -> None:
        await self.client.delete(f"{self.prefix}act:{feed_id}")

    async def enqueue_push(self, push: PushedBody) -> None:
        record = {
            "feed_id": push.feed_id,
            "body": base64.b64encode(push.body).decode("ascii"),
            "headers": push.headers,
            "received_at": push.received_at,
        }
        await self.client.rpush(f"{self.prefix}pushes", json.dumps(record, ensure_ascii=False))

    async def take_pushes(self, limit: int, wait: float) -> list[PushedBody]:
        key = f"{self.prefix}pushes"
        raw: Any = await self.client.lpop(key, limit)
        if not raw and wait > 0:
            # BLPOP takes whole seconds on old servers; fractions work from Redis 6.
            first = await self.client.blpop([key], timeout=wait)
            raw = [first[1]] if first else []
            if raw and limit > 1:
                raw += await self.client.lpop(key, limit - 1) or []
        return [_push(json.loads(item)) for item in raw or []]


def _push(data: dict[str, Any]) -> PushedBody:
    return PushedBody(
        feed_id=data["feed_id"],
        body=base64.b64decode(data["body"]),
        headers=dict(data.get("headers") or {}),
        received_at=float(data.get("received_at") or 0.0),
    )
