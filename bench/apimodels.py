"""Which model library for the public API (liveupdates/api/): msgspec or pydantic, measured on
the hot path, next to what the code did before (the standard library and hand-written checks).

In-process, pure CPU, one core. Cases:
- encode update: one update frame (a story edit with a word-level diff, ~1 KB) to JSON text.
  Built once per log entry and shared by every reader, so it is per update, not per reader.
  Baseline: `json.dumps` of the dict (hub/protocol.py's encoder before msgspec).
- validate subscribe: one client frame `{"type": "subscribe", "channel", "since", "epoch"}` from
  JSON text to a typed, checked value. Per client message. Baseline: `protocol._explain` (json.loads
  and hand-written checks: parse_client_message before the models).
- validate query: GET /v1/stories/{id}/updates?since=&epoch=&limit= parameters into the typed
  query. Per REST request. Baseline: the old hand-written `parse_since` / `parse_epoch` / `parse_int`.

The pydantic models are the same shapes as liveupdates/api/messages.py (tagged union on `type`,
the same bounds). Reports ns per operation and the ratio to the baseline (higher is faster).
    .venv/bin/pip install pydantic   # only for this measurement; the service does not use it
    .venv/bin/python -m bench.apimodels
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from liveupdates.api import examples, messages
from liveupdates.api.models import UpdatesQuery
from liveupdates.api.params import parse
from liveupdates.hub.protocol import (
    _explain,
    encode_update,
    parse_client_message,
    parse_epoch,
    parse_since,
)
from liveupdates.validate import parse_int


def _timed(fn: Callable[[], Any], seconds: float = 0.6) -> float:
    """ns per call: best of 5 rounds of a count sized to `seconds` / 5."""
    n = 1000
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 10:
            break
        n *= 2
    best = elapsed
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e9


def _pydantic_cases() -> dict[str, Callable[[], Any]]:
    from pydantic import BaseModel, Field, TypeAdapter

    seq = Annotated[int, Field(ge=0, le=2**63 - 1)]

    class PSubscribe(BaseModel):
        type: Literal["subscribe"]
        channel: Annotated[str, Field(min_length=1, max_length=512, pattern="^(story|feed):.+$")]
        since: seq | Annotated[str, Field(pattern="^[0-9]{1,19}$")] | None = None
        epoch: Annotated[str, Field(max_length=128)] | None = None

    class PUnsubscribe(BaseModel):
        type: Literal["unsubscribe"]
        channel: str

    class PPing(BaseModel):
        type: Literal["ping"]

    frame = TypeAdapter(Annotated[PSubscribe | PUnsubscribe | PPing, Field(discriminator="type")])

    class PQuery(BaseModel):
        since: seq = 0
        epoch: Annotated[str, Field(max_length=128)] | None = None
        limit: Annotated[int, Field(ge=1, le=1000)] = 100

    # The update frame as pydantic models of the same shape (typed diff included).
    class PRun(BaseModel):
        op: str
        old: str
        new: str

    class PPair(BaseModel):
        old_index: int
        new_index: int
        runs: list[PRun]

    class PHunk(BaseModel):
        op: str
        old_start: int
        old_end: int
        new_start: int
        new_end: int
        old: list[str]
        new: list[str]
        words: list[PPair] | None = None

    class PField(BaseModel):
        old: Any
        new: Any

    class PDiff(BaseModel):
        from_version: int
        to_version: int
        fields: dict[str, PField]
        paragraphs: list[PHunk]

    class PRef(BaseModel):
        id: str
        feed: str
        url: str
        title: str
        version: int

    class PEvent(BaseModel):
        kind: str
        story: PRef
        diff: PDiff | None = None
        summary: str
        at: str

    class PUpdate(BaseModel):
        type: Literal["update"] = "update"
        channel: str
        seq: int
        event: PEvent

    update = PUpdate.model_validate(msgspec.to_builtins(examples.UPDATE))
    text = SUBSCRIBE_TEXT.encode()
    return {
        "encode update": lambda: update.model_dump_json(exclude_none=True),
        "validate subscribe": lambda: frame.validate_json(text),
        "validate query": lambda: PQuery.model_validate(QUERY),
    }


SUBSCRIBE_TEXT = json.dumps(msgspec.to_builtins(examples.SUBSCRIBE))
QUERY = {"since": "41", "epoch": "9f1c2ab4e07d5a61", "limit": "100"}


def _old_query() -> tuple[int | None, str | None, int]:
    return (
        parse_since(QUERY.get("since", "0") or "0"),
        parse_epoch(QUERY.get("epoch")),
        parse_int(QUERY["limit"], "limit", low=1, high=1000),
    )


def main() -> None:
    event_dict = msgspec.to_builtins(examples.UPDATE)["event"]
    update = examples.UPDATE
    client = msgspec.json.Decoder(messages.ClientFrame)
    encoder = msgspec.json.Encoder()
    text = SUBSCRIBE_TEXT.encode()
    cases: dict[str, dict[str, Callable[[], Any]]] = {
        "encode update": {
            "baseline (json.dumps)": lambda: json.dumps(
                {"type": "update", "channel": "story:x", "seq": 10, "event": event_dict},
                ensure_ascii=False,
                separators=(",", ":"),
            ),
            "msgspec (protocol.encode_update, dict)": lambda: encode_update(
                "story:x", 10, event_dict
            ),
            "msgspec (Struct)": lambda: encoder.encode(update),
        },
        "validate subscribe": {
            "baseline (json + hand checks)": lambda: _explain(SUBSCRIBE_TEXT),
            "msgspec (protocol.parse_client_message)": lambda: parse_client_message(SUBSCRIBE_TEXT),
            "msgspec (decode only)": lambda: client.decode(text),
        },
        "validate query": {
            "baseline (hand checks)": _old_query,
            "msgspec (api.params.parse)": lambda: parse(UpdatesQuery, QUERY),
        },
    }
    try:
        for name, fn in _pydantic_cases().items():
            cases[name]["pydantic"] = fn
    except ImportError:
        print("pydantic is not installed: its rows are missing", file=sys.stderr)
    print(
        f"cores: {os.cpu_count()}; Python {sys.version.split()[0]}; msgspec {msgspec.__version__}"
    )
    print()
    print("| case | implementation | ns/op | speed vs baseline |")
    print("|---|---|---:|---:|")
    for case, impls in cases.items():
        base = None
        for impl, fn in impls.items():
            ns = _timed(fn)
            base = base or ns
            print(f"| {case} | {impl} | {ns:,.0f} | {base / ns:.2f}x |")


if __name__ == "__main__":
    main()
