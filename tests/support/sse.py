"""Reading Server-Sent Events from the hub with httpx streaming, as tests and clients need it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    event: str | None
    id: str | None
    data: Any
    comment: str | None = None


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """A minimal SSE parser: one data line per event, as the hub sends."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                data = fields.get("data")
                yield Event(
                    fields.get("event"), fields.get("id"), json.loads(data) if data else None
                )
                fields = {}
            continue
        if line.startswith(":"):
            yield Event(None, None, None, comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
