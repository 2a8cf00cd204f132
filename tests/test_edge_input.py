"""Whatever a client sends to a public entry point is a 4xx or an error frame: never a 5xx, never
a 1011 close. Explicit cases from the fuzz run that found them, then Hypothesis against a live
service (hub, SSE, REST and admin API with a token)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

from tests.support.adminservice import AdminService
from tests.support.hubserver import HubServerHandle, StartHub

TOKEN = "edge-input-token-0123"
HUGE = "9" * 5000


# -- explicit cases ------------------------------------------------------------------------------


@pytest.fixture
async def hub(start_hub_server: StartHub) -> HubServerHandle:
    # Frames up to 64 KiB, so a 5,000-digit number reaches the parser.
    handle = await start_hub_server(hub_max_message_bytes=65536)
    await handle.publish("bridge")
    return handle


@pytest.mark.parametrize(
    "path",
    [
        "/v1/stories/bridge/updates?since=²",
        "/v1/stories/bridge/updates?since=%D9%A3",  # ARABIC-INDIC DIGIT THREE
        "/v1/stories/bridge/updates?limit=²",
        f"/v1/stories/bridge/updates?since={HUGE}",
        "/v1/stories/bridge/updates?since=9223372036854775808",
        "/v1/stories/bridge/versions/²",
        "/v1/stories/bridge/versions/9223372036854775808",
        f"/v1/stories/bridge/versions/{HUGE}",
        "/v1/stories/bridge/versions/0",
        "/v1/feeds/gazette/stories?limit=²",
        f"/v1/feeds/gazette/stories?limit={HUGE}",
        "/v1/sse?channel=story:bridge&since=²",
        f"/v1/sse?channel=story:bridge&since={HUGE}",
    ],
)
async def test_bad_numbers_in_rest_and_sse_are_400(hub: HubServerHandle, path: str) -> None:
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        response = await http.get(path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request" and "ASCII" in error["message"]


async def test_a_5000_digit_last_event_id_is_400(hub: HubServerHandle) -> None:
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        response = await http.get("/v1/sse?channel=story:bridge", headers={"Last-Event-ID": HUGE})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_good_numbers_still_work(hub: HubServerHandle) -> None:
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=10) as http:
        updates = (await http.get("/v1/stories/bridge/updates?since= 0&limit=5")).json()
        assert [u["seq"] for u in updates["updates"]] == [1]
        assert (await http.get("/v1/stories/bridge/versions/1")).json()["version"] == 1
        assert (await http.get("/v1/stories/bridge/versions/2")).status_code == 404


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        # The JSON text carries the escapes: json.loads makes lone surrogates of them.
        ('{"type": "subscribe", "channel": "feed:\\udfff"}', "surrogate"),
        ('{"type": "subscribe", "channel": "story:\\ud800"}', "surrogate"),
        ('{"type": "unsubscribe", "channel": "story:\\ud800"}', "surrogate"),
        ('{"type": "subscribe", "channel": "story:bridge", "epoch": "\\ud800"}', "epoch"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": "²"}', "ASCII"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": "' + HUGE + '"}', "ASCII"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": ' + HUGE + "}", "JSON"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": 1e400}', "since"),
        ('{"type": "subscribe", "channel": "story:bridge", "since": 9223372036854775808}', "since"),
        ('{"type": "\\ud800"}', "unknown message type"),
    ],
)
async def test_bad_frames_get_bad_request_and_the_connection_lives(
    hub: HubServerHandle, frame: str, fragment: str
) -> None:
    async with hub.ws() as client:
        await client.send(frame)
        error = await client.expect("error")
        assert error["code"] == "bad_request"
        assert fragment in error["message"]
        await client.send({"type": "ping"})
        await client.expect("pong")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(
        tmp_path / "lu.sqlite3",
        admin_token=TOKEN,
        limits_requests_per_second_per_address=1e6,
        hub_rate_per_second=1e6,
        hub_rate_burst=1_000_000,
    ) as svc:
        yield svc


@pytest.mark.parametrize(
    "body",
    [
        '{"url": "http://127.0.0.1:9/feed.xml", "interval_seconds": 1' + "0" * 400 + "}",
        '{"url": "http://127.0.0.1:9/feed.xml", "interval_seconds": 1e400}',
        '{"url": "http://127.0.0.1:9/feed.xml", "title": "Harbour \\ud800 news"}',
        '{"url": "http://127.0.0.1:9/\\ud800"}',
        '{"url": "http://127.0.0.1:9/feed.xml", "id": "harbour\\udfff"}',
        # A lone surrogate as a key (found by the fuzz test below).
        '{"\\ud800": 1, "url": "http://127.0.0.1:9/feed.xml"}',
    ],
)
def test_admin_bodies_with_bad_numbers_or_text_are_400(service: AdminService, body: str) -> None:
    headers = {**service.auth, "Content-Type": "application/json"}
    response = httpx.post(service.url("/v1/admin/feeds"), content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    assert httpx.get(service.url("/v1/admin/feeds"), headers=service.auth).json()["feeds"] == []


# -- Hypothesis against a live service -----------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),  # includes lone surrogates
    SURROGATES,
    st.sampled_from(["story:bridge", "feed:gazette", "story:", "feed:", "²", "٣", "-1", HUGE]),
)
NUMBERISH = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet="0123456789²³¹٣\uff10 -+.eE", max_size=30),
    st.just(HUGE),
    st.just(""),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=8,
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def _dumps(value: Any) -> str:
    # ensure_ascii writes lone surrogates as \\udXXX escapes, as a hostile client would.
    return json.dumps(value, ensure_ascii=True)


def _path(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="") or "x"


class _WS:
    """One reused WebSocket client; reconnects after the server closes it (1008 for abuse)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stack = contextlib.ExitStack()
        self.conn: ClientConnection | None = None

    def exchange(self, frame: str) -> None:
        if self.conn is None:
            self.conn = self.stack.enter_context(sync_connect(self.url, open_timeout=10))
        conn = self.conn
        try:
            conn.send(frame)
            conn.send('{"type": "ping"}')
            deadline = time.monotonic() + 10
            while True:  # answers to the frame (error, subscribed, ...), then the pong
                reply = json.loads(conn.recv(timeout=max(0.1, deadline - time.monotonic())))
                if reply.get("type") == "pong":
                    return
        except ConnectionClosed:
            code = conn.close_code
            self.conn = None
            assert code != 1011, f"closed with 1011 after {frame!r}"
            assert code in (1008, 1000), code

    def close(self) -> None:
        self.stack.close()


def test_arbitrary_input_never_gets_a_5xx_or_1011(service: AdminService) -> None:
    ws = _WS(service.url("/v1/ws").replace("http://", "ws://"))
    http = httpx.Client(base_url=service.base_url, timeout=10)
    admin = {**service.auth, "Content-Type": "application/json"}

    def ok(response: httpx.Response) -> None:
        assert response.status_code < 500, (response.request.url, response.text)

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        kind=st.sampled_from(["subscribe", "unsubscribe", "ping", "other"]),
        channel=JSON_VALUES,
        since=JSON_VALUES | NUMBERISH,
        epoch=JSON_VALUES,
        raw=JSON_VALUES,
        ident=ANY_TEXT,
        number=NUMBERISH,
        header=HEADER_TEXT,
        body=st.dictionaries(
            st.sampled_from(["url", "id", "title", "interval_seconds", "adaptive", "x"]),
            JSON_VALUES | NUMBERISH,
            max_size=5,
        ),
    )
    def check(
        kind: str,
        channel: Any,
        since: Any,
        epoch: Any,
        raw: Any,
        ident: str,
        number: str,
        header: str,
        body: dict[str, Any],
    ) -> None:
        # WebSocket frames: a well-shaped message with hostile fields, and arbitrary JSON.
        ws.exchange(_dumps({"type": kind, "channel": channel, "since": since, "epoch": epoch}))
        ws.exchange(_dumps(raw))
        # REST: hostile ids and numbers in paths and queries.
        p, n = _path(ident), quote(number, safe="")
        ok(http.get(f"/v1/stories/{p}"))
        ok(http.get(f"/v1/stories/{p}/versions/{n or '1'}"))
        ok(http.get(f"/v1/stories/{p}/updates", params={"since": number, "limit": number}))
        ok(http.get(f"/v1/feeds/{p}/stories", params={"limit": number}))
        ok(http.get("/v1/stories", params={"url": ident.encode("utf-8", "replace").decode()}))
        ok(http.get("/admin/admin.js"))
        # SSE: channel, since and Last-Event-ID (unknown channels answer at once).
        channel_text = channel if isinstance(channel, str) else _dumps(channel)
        with http.stream(
            "GET",
            f"/v1/sse?channel={_path(channel_text)}&since={n}",
            headers={"Last-Event-ID": header.strip(" \t")},  # h11 refuses edge blanks
        ) as stream:
            ok(stream)
        # Admin API with a token: never polls (paused), so nothing leaves the machine.
        body = {**body, "paused": True}
        ok(http.post("/v1/admin/feeds", content=_dumps(body), headers=admin))
        ok(http.patch(f"/v1/admin/feeds/{p}", content=_dumps(body), headers=admin))
        ok(http.get("/v1/admin/audit", params={"limit": number}, headers=admin))

    try:
        check()
    finally:
        ws.close()
        http.close()
