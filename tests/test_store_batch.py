"""Group commit: store calls made together run as one batch, each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from liveupdates.models import FeedConfig, FetchState, PollOutcome
from liveupdates.store.batch import Batcher
from liveupdates.store.sqlite import SQLiteStore
from tests.support.waiting import until


class Doubler:
    """A batch function that doubles numbers, refuses 13, and remembers every batch it ran."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if 13 in items:
            raise ValueError("unlucky")
        return [2 * i for i in items]


async def test_calls_made_together_run_as_one_batch() -> None:
    run = Doubler()
    batcher = Batcher(run)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == [
        2 * i for i in range(10)
    ]
    assert run.batches == [list(range(10))]
    # A lone call is a batch of one.
    assert await batcher.submit(21) == 42
    assert run.batches[-1] == [21]


async def test_calls_made_while_a_batch_runs_are_the_next_batch() -> None:
    run = Doubler()
    batcher = Batcher(run)
    run.gate.clear()
    first = asyncio.ensure_future(batcher.submit(1))
    await until(lambda: run.batches, 5, "the first batch never started")
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await first == 2
    assert await asyncio.gather(*later) == [4, 6, 8]
    assert run.batches == [[1], [2, 3, 4]]


async def test_a_failing_item_fails_only_its_own_caller() -> None:
    batcher = Batcher(Doubler())
    results = await asyncio.gather(
        *(batcher.submit(i) for i in (12, 13, 14)), return_exceptions=True
    )
    assert results[0] == 24 and results[2] == 28
    assert isinstance(results[1], ValueError)


async def test_an_outage_fails_the_whole_batch_without_retrying_each_item() -> None:
    run = Doubler()
    batcher = Batcher(run, outage=(ValueError,))
    results = await asyncio.gather(
        *(batcher.submit(i) for i in (12, 13, 14)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    assert run.batches == [[12, 13, 14]]  # one attempt, not one more per item


async def test_sqlite_polls_that_end_together_are_each_recorded(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "lu.sqlite3")
    try:
        ids = [f"feed{i}" for i in range(30)]
        for feed_id in ids:
            await store.upsert_feed(FeedConfig(id=feed_id, url=f"https://example.com/{feed_id}"))

        async def poll(i: int, feed_id: str) -> None:
            state = await store.get_fetch_state(feed_id)
            assert state == FetchState()
            outcome = PollOutcome(
                feed_id=feed_id,
                at="2026-12-01T00:00:00Z",
                status="error" if i % 3 == 0 else "ok",
                http_status=500 if i % 3 == 0 else 200,
                error="HTTP 500" if i % 3 == 0 else None,
            )
            await store.record_poll(outcome, FetchState(etag=f'"{i}"') if i % 2 else None)

        await asyncio.gather(*(poll(i, f) for i, f in enumerate(ids)))
        states = await asyncio.gather(*(store.get_fetch_state(f) for f in ids))
        assert [s.etag for s in states] == [f'"{i}"' if i % 2 else None for i in range(30)]
        health = {h.config.id: h for h in await store.feeds_health()}
        assert all(health[f].last_poll is not None for f in ids)
        assert [bool(health[f].last_error) for f in ids] == [i % 3 == 0 for i in range(30)]
    finally:
        await store.close()


async def test_a_closed_store_fails_each_caller(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "lu.sqlite3")
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get_fetch_state("feed")
