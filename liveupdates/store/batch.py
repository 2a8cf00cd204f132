"""Group commit: calls made while one batch is in flight run together as the next batch.

A poller with 50 feeds in flight makes 50 small store calls at a time (read a fetch state, record
an outcome). Each one on its own costs a trip to a worker thread and, for a write, a transaction.
`Batcher` gives every caller its own awaitable answer, exactly as a direct call would (a write has
been committed when `submit` returns), but runs the calls that arrive together as one
`run(items)`: one thread trip and one transaction for the whole batch. A lone call waits for
nothing but one turn of the event loop.

If a batch fails, its items are run again one by one, so one bad item (a feed deleted meanwhile)
fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """`await submit(item)` answers `run([..., item, ...])`'s answer for `item`."""

    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        *,
        outage: tuple[type[Exception], ...] = (),
    ) -> None:
        """`outage`: errors that say the store itself is unavailable (a locked database): they
        fail the whole batch at once instead of being retried item by item."""
        self._run = run
        self._outage = outage
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        if self._drainer is not None and self._drainer.get_loop() is not loop:
            # Used from another event loop than before (tests): the old loop's batch is gone.
            self._drainer, self._pending = None, []
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the callers of this loop turn join the first batch
            while self._pending:
                batch, self._pending = self._pending, []
                await self._answer(batch)
        except asyncio.CancelledError:
            for _, future in self._pending:
                future.cancel()
            self._pending = []
            raise
        finally:
            if self._drainer is asyncio.current_task():
                self._drainer = None

    async def _answer(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, self._outage):
                for one in batch:  # find the item that failed; the others still succeed
                    await self._answer([one])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
