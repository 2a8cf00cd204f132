"""Clients' mistakes are not the server's errors: at most one short log line now and then.

uvicorn logs some client mistakes itself, one per occurrence, one of them (an invalid UTF-8
text frame) as an ERROR with a full traceback. `ClientMistakeFilter` on the "uvicorn.error" logger
turns those into one WARNING line without traceback, at most one per INTERVAL seconds per kind,
saying how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Messages uvicorn logs for something a client sent (prefixes).
CLIENT_MISTAKES = (
    "Invalid UTF-8 sequence received from client",
    "Invalid HTTP request received",
    "Unsupported upgrade request",
)
INTERVAL = 60.0


class ClientMistakeFilter(logging.Filter):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        kind = next((m for m in CLIENT_MISTAKES if message.startswith(m)), None)
        if kind is None:
            return True
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < INTERVAL:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        dropped = self._dropped.pop(kind, 0)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.msg = f"client error: {kind}" + (
            f" ({dropped} more in the last {INTERVAL:g} s not logged)" if dropped else ""
        )
        record.args = ()
        return True


def install(logger_name: str = "uvicorn.error") -> None:
    """Add the filter to `logger_name` once (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ClientMistakeFilter) for f in logger.filters):
        logger.addFilter(ClientMistakeFilter())
