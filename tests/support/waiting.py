"""Polling a condition until a deadline: the one wait helper the tests share."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

NOT_MET = "condition not met before the deadline"


def _failure(message: str | Callable[[], object]) -> object:
    return message() if callable(message) else message


async def until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    message: str | Callable[[], object] = NOT_MET,
    interval: float = 0.02,
) -> Any:
    """Call `predicate` (sync or async) until it returns something truthy, and return that.

    Fails the test with `message` (or what a callable `message` returns) once `timeout` seconds
    have passed without it.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, _failure(message)
        await asyncio.sleep(interval)


def until_sync(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    message: str | Callable[[], object] = NOT_MET,
    interval: float = 0.02,
) -> Any:
    """`until` for synchronous tests: blocks between tries instead of yielding to a loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, _failure(message)
        time.sleep(interval)
