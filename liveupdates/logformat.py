"""How the processes log: human-readable lines (default) or one JSON object per line.

JSON lines are for log pipelines (Loki, Elasticsearch, CloudWatch): each carries the time, level,
logger and message, plus the feed, story, channel or device the line is about when the log call
passed them with `extra=` (see CONTEXT_KEYS), so a pipeline can filter on them without parsing
messages.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")

# What a log call may pass in `extra=` to say what it is about; copied into JSON lines.
CONTEXT_KEYS = ("feed", "story", "channel", "device", "transport", "actor")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Libraries whose per-request or per-poll lines drown what matters; -v brings them back.
NOISY_LOGGERS = ("apscheduler", "httpx", "websockets.server")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(log_format: str = "text", *, verbose: bool = False) -> None:
    """Set up the root logger for a command: `log_format` is "text" or "json"."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
