"""JSON log lines: one object per line, whatever the message holds, with the context passed."""

from __future__ import annotations

import json
import logging
import sys

from liveupdates.logformat import JsonFormatter


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("liveupdates.test")
    try:
        raise ValueError("feed went away")
    except ValueError:
        exc_info = sys.exc_info()
    return logger.makeRecord(
        "liveupdates.test", logging.ERROR, __file__, 1, message, args, exc_info, extra=extra
    )


def test_a_record_is_one_line_of_json_with_its_context_and_traceback() -> None:
    line = JsonFormatter().format(
        _record("poll of feed %s failed:\nline two", "gazette", feed="gazette", channel=None)
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "poll of feed gazette failed:\nline two"
    assert (data["level"], data["logger"], data["feed"]) == ("error", "liveupdates.test", "gazette")
    assert "channel" not in data  # absent context is left out, not null
    assert "ValueError: feed went away" in data["exception"]
    assert data["time"].endswith("+00:00")


def test_non_json_values_in_the_context_are_written_as_text() -> None:
    data = json.loads(JsonFormatter().format(_record("x", device=object())))
    assert data["device"].startswith("<object object")
