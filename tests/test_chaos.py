"""Exactly-once, proven under chaos (issue 10, item 14).

Scale-out mode with everything real: a redis-server of the test's own (append-only file, fsync on
every write, so it can be restarted with its data), two `web` and two `worker` processes started as
the Procfile starts them, and a loopback feed whose live story gains a numbered entry every second.
50 WebSocket readers per web process and 20 SSE readers follow the story's channel and resume after
every disconnect (WebSocket: subscribe with since/epoch; SSE: Last-Event-ID plus epoch), with
jittered backoff, some on the same web process, some on the other.

While the story runs, a worker is SIGKILLed and restarted, then a web process, then Redis is shut
down and started again on the same port and directory. At the end, every reader's sequence of
(seq, version) must be the channel's log as REST serves it (`/updates?since=0`): nothing lost,
nothing twice, nothing out of order; and the store must hold each version once.

A reset is only acceptable with a cause. The log keeps its epoch throughout (AOF on, nothing
trimmed), so the only cause here is deliberate: a few readers resume once with an epoch from
another log. Their reset must carry the latest version (never older than its own seq, nor than any
version already delivered to some reader before the reader asked), equal to the stored one; what
follows must continue the log from the reset's seq.

Run it alone with `pytest -m chaos`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from liveupdates.models import story_channel
from tests.support import waiting
from tests.support.feedserver import FeedServer
from tests.support.processes import Processes, free_port, redis_env
from tests.support.redis_server import RedisServerProcess
from tests.support.sse import events
from tests.support.stories import STORM_WATCH, rss, storm_watch_entry, storm_watch_story

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(360)]

WS_PER_WEB = 50
SSE_READERS = 20
FEED_ID = "courier"
FEED_PATH = "/courier.xml"
PREFIX = "chaos:"
ENTRY_PERIOD = 1.0  # the feed's producer rate: one new entry per second
POLL_INTERVAL = 0.5
# An epoch no log of this run has: a reader resuming with it must get a reset.
FOREIGN_EPOCH = "0f0f0f0f0f0f0f0f"
# Generous, for a loaded 2-core machine: a worker killed mid-poll holds its feed for a lease
# (fetch timeout 2 s + 10 s), Redis backoffs add up to 5 s; exactness is asserted, not speed.
START_DEADLINE = 90.0
PROGRESS_DEADLINE = 60.0
CATCH_UP_DEADLINE = 90.0
ANSWER_DEADLINE = 15.0
STEPS = 8  # log entries that must land after each chaos step before the next one
BACKOFF_CAP = 2.0
OUTAGE_ENTRIES = 2  # feed changes while Redis is down
POLICIES = ("sticky", "same-first", "other-first")


class Refused(Exception):
    """The server answered, but not with a stream: retry like any other failure."""


@dataclass
class Reset:
    seq: int
    snapshot: dict[str, Any]
    reason: str
    deliberate: bool
    known_before: int  # the highest version any reader had been sent when this one asked

    @property
    def version(self) -> int:
        return int(self.snapshot["version"])


@dataclass
class Asked:
    since: int | None
    epoch: str | None
    deliberate: bool
    known_before: int


@dataclass
class Observed:
    """What all readers have seen between them."""

    high_water: int = 0  # highest story version sent to any reader


@dataclass
class Reader:
    """One client's view: what it asked, what it got, where it stands."""

    name: str
    transport: str  # "ws" or "sse"
    home: int
    other: int
    policy: str  # "sticky": home only; "same-first"/"other-first": where it reconnects first
    foreign_epoch: bool = False  # resumes once with FOREIGN_EPOCH
    position: int = 0  # last seq applied
    epoch: str | None = None
    last_port: int = 0
    # ("update", seq, version) or ("reset", seq, version), in the order received
    events: list[tuple[str, int, int]] = field(default_factory=list)
    resets: list[Reset] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # the port of each subscription
    drops: list[str] = field(default_factory=list)
    oddities: list[str] = field(default_factory=list)  # error frames, bad SSE ids, ...
    faults: list[str] = field(default_factory=list)  # what the final audit found
    _asked: Asked | None = None
    _reset_due: tuple[str, bool] | None = None

    def port_for(self, attempt: int) -> int:
        """Where to connect on the `attempt`th try since the last subscription (1: first)."""
        if self.policy == "sticky" or not self.last_port:
            return self.home
        last = self.last_port
        other = self.other if last == self.home else self.home
        order = (last, other) if self.policy == "same-first" else (other, last)
        return order[(attempt - 1) % 2]

    def ask(self, observed: Observed) -> Asked:
        """The position to subscribe from: since/epoch (the first time: the whole log)."""
        deliberate = self.foreign_epoch and self.epoch is not None
        epoch = FOREIGN_EPOCH if deliberate else self.epoch
        self._asked = Asked(self.position, epoch, deliberate, observed.high_water)
        return self._asked

    def subscribed(self, port: int, answer: dict[str, Any]) -> None:
        asked = self._asked
        assert asked is not None
        self.ports.append(port)
        self.last_port = port
        self.epoch = answer["epoch"]
        self._reset_due = None
        if not answer["recovered"]:
            self._reset_due = (self._reset_reason(asked, answer), asked.deliberate)

    @staticmethod
    def _reset_reason(asked: Asked, answer: dict[str, Any]) -> str:
        since, seq = asked.since, answer["seq"]
        if asked.deliberate:
            return f"resumed at seq {since} with the epoch of another log ({FOREIGN_EPOCH})"
        if asked.epoch is not None and asked.epoch != answer["epoch"]:
            return f"the log was replaced: epoch {asked.epoch} -> {answer['epoch']}"
        if since is not None and since > seq:
            return f"position {since} is beyond the log's seq {seq}"
        return f"none: same epoch {answer['epoch']}, the log holds {since}..{seq}"

    def receive(self, message: dict[str, Any], observed: Observed) -> None:
        kind = message.get("type")
        if kind == "update":
            seq, version = message["seq"], message["event"]["story"]["version"]
            self.events.append(("update", seq, version))
            self.position = max(self.position, seq)
            observed.high_water = max(observed.high_water, version)
        elif kind == "reset":
            reason, deliberate = self._reset_due or ("a reset nobody announced", False)
            self._reset_due = None
            assert self._asked is not None
            reset = Reset(
                message["seq"], message["snapshot"], reason, deliberate, self._asked.known_before
            )
            self.resets.append(reset)
            if deliberate:
                self.foreign_epoch = False  # done: the next resume is an honest one
            self.events.append(("reset", reset.seq, reset.version))
            self.position = reset.seq
            observed.high_water = max(observed.high_water, reset.version)
        else:
            self.oddities.append(f"unexpected message {message}")


def backoff(attempt: int) -> float:
    """Full jitter, as docs/protocol.md recommends, capped low to keep the run short."""
    return random.uniform(0, min(BACKOFF_CAP, 0.1 * 2**attempt))


async def run_ws(reader: Reader, channel: str, observed: Observed) -> None:
    attempt = 0
    while True:
        port = reader.port_for(attempt)
        try:
            async with connect(
                f"ws://127.0.0.1:{port}/v1/ws", open_timeout=10, close_timeout=2
            ) as ws:
                asked = reader.ask(observed)
                request: dict[str, Any] = {"type": "subscribe", "channel": channel}
                request.update(since=asked.since, epoch=asked.epoch)
                await ws.send(json.dumps(request))
                answer = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_DEADLINE))
                if answer.get("type") != "subscribed":
                    raise Refused(str(answer))
                reader.subscribed(port, answer)
                attempt = 0
                async for raw in ws:
                    reader.receive(json.loads(raw), observed)
                reader.drops.append(f"{port}: closed {ws.close_code}")
        except (OSError, TimeoutError, WebSocketException, Refused) as exc:
            reader.drops.append(f"{port}: {type(exc).__name__}: {exc}")
        attempt += 1
        await asyncio.sleep(backoff(attempt))


async def run_sse(reader: Reader, channel: str, observed: Observed) -> None:
    attempt = 0
    # The heartbeat comes every 2 s (env below), so a silent stream is a dead one.
    timeout = httpx.Timeout(10.0, read=10.0)
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
        while True:
            port = reader.port_for(attempt)
            asked = reader.ask(observed)
            params = {"channel": channel}
            if asked.epoch is not None:
                params["epoch"] = asked.epoch
            # As EventSource does: the position goes in Last-Event-ID (0: the whole log).
            headers = {"Last-Event-ID": str(asked.since)}
            try:
                async with http.stream(
                    "GET", f"http://127.0.0.1:{port}/v1/sse", params=params, headers=headers
                ) as response:
                    if response.status_code != 200:
                        raise Refused(f"HTTP {response.status_code}")
                    async for event in events(response):
                        if event.event is None:
                            continue  # retry: field, heartbeat comments
                        if event.event == "subscribed":
                            reader.subscribed(port, event.data)
                            attempt = 0
                        elif event.event == "close":
                            reader.drops.append(f"{port}: close event {event.data}")
                            break
                        else:
                            if event.id != str(event.data.get("seq")):
                                reader.oddities.append(f"SSE id {event.id} for {event.data}")
                            reader.receive(event.data, observed)
                    else:
                        reader.drops.append(f"{port}: stream ended")
            except (OSError, httpx.HTTPError, Refused) as exc:
                reader.drops.append(f"{port}: {type(exc).__name__}: {exc}")
            attempt += 1
            await asyncio.sleep(backoff(attempt))


class FeedDriver:
    """Serves the live story and adds one numbered entry per ENTRY_PERIOD (a producer rate)."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.entries = 0
        self.publish()

    def publish(self) -> None:
        self.server.set(FEED_PATH, rss([storm_watch_story(self.entries)], title="Coast Courier"))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(ENTRY_PERIOD)
            self.entries += 1
            self.publish()


class Service:
    """REST reads from whichever web process answers."""

    def __init__(self, http: httpx.AsyncClient, ports: list[int]) -> None:
        self.http = http
        self.ports = ports

    async def get(self, path: str) -> httpx.Response | None:
        for port in self.ports:
            with contextlib.suppress(httpx.HTTPError, OSError):
                response = await self.http.get(f"http://127.0.0.1:{port}{path}")
                if response.status_code < 500:
                    return response
        return None

    async def json(self, path: str) -> Any:
        response = await self.get(path)
        return response.json() if response is not None and response.status_code == 200 else None

    async def healthy(self, port: int) -> bool:
        with contextlib.suppress(httpx.HTTPError, OSError):
            return (await self.http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        return False

    async def log(self, story_id: str) -> tuple[str, list[dict[str, Any]]]:
        """The channel's whole log, paged: (epoch, update messages)."""
        updates: list[dict[str, Any]] = []
        epoch = None
        while True:
            page = await self.json(
                f"/v1/stories/{story_id}/updates?since={len(updates)}&limit=1000"
            )
            assert page is not None and page["recovered"], page
            assert epoch in (None, page["epoch"]), "the epoch changed while paging"
            epoch = page["epoch"]
            updates += page["updates"]
            if not page["more"]:
                return epoch, updates


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """Redis of this test's own: it gets restarted, which the shared one must never be."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServerProcess(workdir, persistent=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(
    tmp_path: Path, chaos_redis: RedisServerProcess, feed_server: FeedServer
) -> Iterator[Processes]:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        "[[feeds]]\n"
        f'id = "{FEED_ID}"\n'
        f'url = "{feed_server.url(FEED_PATH)}"\n'
        f"interval_seconds = {POLL_INTERVAL}\n"
        "adaptive = false\n"
    )
    env = redis_env(
        chaos_redis.url,
        PREFIX,
        tmp_path,
        feeds,
        LIVEUPDATES_POLL_MIN_INTERVAL=str(POLL_INTERVAL),
        LIVEUPDATES_POLL_MAX_BACKOFF="5",
        LIVEUPDATES_FETCH_TOTAL_TIMEOUT="2",
        # The feed server is on loopback, which the fetcher refuses unless ops allow it.
        LIVEUPDATES_FETCH_ALLOW_NETWORKS="127.0.0.0/8",
        # Every reader comes from 127.0.0.1: per-address limits must not count against them.
        LIVEUPDATES_LIMITS_CONNECTIONS="100000",
        LIVEUPDATES_LIMITS_CONNECTIONS_PER_ADDRESS="100000",
        LIVEUPDATES_LIMITS_REQUESTS_PER_SECOND_PER_ADDRESS="100000",
        LIVEUPDATES_HUB_SSE_HEARTBEAT="2",
        LIVEUPDATES_HUB_DEMO="false",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.tails(25))  # shown by pytest when the test failed


def entry_count(paragraphs: list[str]) -> int:
    """How many live entries a version shows; checks they are exactly entries 1..n, in order."""
    assert paragraphs[: len(STORM_WATCH)] == STORM_WATCH
    entries = paragraphs[len(STORM_WATCH) :]
    assert entries == [storm_watch_entry(n) for n in range(1, len(entries) + 1)], entries
    return len(entries)


def audit(reader: Reader, log: dict[int, int], last: int) -> Counter[str]:
    """Count what went wrong for one reader; details go to reader.faults."""
    faults: Counter[str] = Counter()
    expected = 1
    seen: set[int] = set()
    for kind, seq, version in reader.events:
        if kind == "reset":
            expected = seq + 1
            continue
        if seq in seen:
            faults["duplicated"] += 1
            reader.faults.append(f"seq {seq} again")
        elif seq < expected:
            faults["out of order"] += 1
            reader.faults.append(f"seq {seq} after {expected - 1}")
        if seq > expected:
            faults["lost"] += seq - expected
            reader.faults.append(f"lost seqs {expected}..{seq - 1}")
        if log.get(seq) != version:
            faults["wrong version"] += 1
            reader.faults.append(f"seq {seq} has version {version}, the log {log.get(seq)}")
        seen.add(seq)
        expected = max(expected, seq + 1)
    if expected <= last:
        faults["lost"] += last + 1 - expected
        reader.faults.append(f"never got seqs {expected}..{last}")
    return faults


async def test_exactly_once_through_worker_web_and_redis_restarts(
    cluster: Processes, chaos_redis: RedisServerProcess, feed_server: FeedServer
) -> None:
    began = time.monotonic()
    driver = FeedDriver(feed_server)
    port_a, port_b = free_port(), free_port()
    # Worker 1 starts alone, so it holds the feed: SIGKILLing it kills the worker that polls.
    cluster.start("worker1", "worker")
    cluster.start("web-a", "web", "--port", str(port_a))
    cluster.start("web-b", "web", "--port", str(port_b))
    observed = Observed()
    readers: list[Reader] = []
    tasks: list[asyncio.Task[None]] = []
    steps: list[str] = []

    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        service = Service(http, [port_a, port_b])

        async def first_story() -> str | None:
            body = await service.json(f"/v1/feeds/{FEED_ID}/stories")
            return body["stories"][0]["id"] if body and body["stories"] else None

        async def story() -> dict[str, Any] | None:
            return await service.json(f"/v1/stories/{story_id}")

        def crashed() -> str:
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            return "" if not failed else f"a reader crashed: {failed[0].exception()!r}"

        async def progress(what: str) -> int:
            """Wait until STEPS more entries are in the log; returns the seq reached."""
            start = (await waiting.until(story, START_DEADLINE, f"{what}: no story"))["seq"]

            async def moved() -> int | None:
                doc = await story()
                return doc["seq"] if doc and doc["seq"] >= start + STEPS else None

            seq = await waiting.until(
                moved, PROGRESS_DEADLINE, f"{what}: the log did not grow from {start}", 0.1
            )
            steps.append(f"{time.monotonic() - began:5.1f}s {what}: log at {seq}")
            return seq

        async def caught_up(seq: int, what: str) -> None:
            def done() -> bool:
                assert not crashed(), crashed()
                return all(r.position >= seq for r in readers)

            def behind() -> str:
                late = [
                    f"{r.name}@{r.position} ({r.drops[-1:]})" for r in readers if r.position < seq
                ]
                return f"{what}: {len(late)} readers short of seq {seq}: {late[:8]}"

            await waiting.until(done, CATCH_UP_DEADLINE, behind, 0.1)

        feeding: asyncio.Task[None] | None = None
        try:
            story_id = await waiting.until(
                first_story, START_DEADLINE, "the first poll's story on a web process", 0.2
            )
            channel = story_channel(story_id)
            cluster.start("worker2", "worker")
            for port in (port_a, port_b):
                await waiting.until(lambda p=port: service.healthy(p), START_DEADLINE, "web up")
            epoch_at_start = (await story())["epoch"]
            feeding = asyncio.create_task(driver.run())

            for i in range(2 * WS_PER_WEB):
                home, other = (port_a, port_b) if i < WS_PER_WEB else (port_b, port_a)
                readers.append(
                    Reader(
                        f"ws{i}",
                        "ws",
                        home,
                        other,
                        POLICIES[i % 3],
                        # Some of web A's readers resume once with a foreign epoch.
                        foreign_epoch=home == port_a and i % 12 == 5,
                    )
                )
            for i in range(SSE_READERS):
                home, other = (port_a, port_b) if i < SSE_READERS // 2 else (port_b, port_a)
                readers.append(
                    Reader(
                        f"sse{i}", "sse", home, other, POLICIES[i % 3], foreign_epoch=i in (3, 7)
                    )
                )
            for reader in readers:
                run = run_ws if reader.transport == "ws" else run_sse
                tasks.append(asyncio.create_task(run(reader, channel, observed)))

            await caught_up(await progress("readers subscribed"), "first subscriptions")

            # 1. The worker that polls the feed dies mid-run; another takes over, it comes back.
            cluster.stop("worker1", signal.SIGKILL)
            cluster.start("worker1", "worker")
            await caught_up(await progress("worker 1 SIGKILLed and restarted"), "after worker")

            # 2. A web process dies: its readers resume on the other one or on it once back.
            cluster.stop("web-a", signal.SIGKILL)
            cluster.start("web-a", "web", "--port", str(port_a))
            await waiting.until(lambda: service.healthy(port_a), START_DEADLINE, "web A back")
            await caught_up(await progress("web A SIGKILLed and restarted"), "after web A")

            # 3. Redis shuts down (flushing its append-only file) and starts again with its data,
            # after the feed changed twice: web processes and workers retry on their own
            # backoffs, so either may be back first.
            chaos_redis.stop(signal.SIGTERM)
            changed = driver.entries + OUTAGE_ENTRIES
            await waiting.until(lambda: driver.entries >= changed, START_DEADLINE, "the feed")
            chaos_redis.start()
            seq = await progress("Redis restarted")
            await caught_up(seq, "after Redis")

            # The story stops growing; everyone must end on the log's last entry.
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeding
            last_entry = storm_watch_entry(driver.entries)

            async def final() -> dict[str, Any] | None:
                doc = await story()
                return doc if doc and doc["paragraphs"][-1] == last_entry else None

            final_doc = await waiting.until(
                final, PROGRESS_DEADLINE, f"entry {driver.entries} never stored", 0.1
            )
            last = final_doc["seq"]
            await caught_up(last, "at the end")
        finally:
            if feeding is not None:
                feeding.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        wall = time.monotonic() - began
        epoch, updates = await service.log(story_id)
        log = {u["seq"]: u["event"]["story"]["version"] for u in updates}

        # The log: seqs 1..last, each a new version, and the log was never replaced.
        assert epoch == epoch_at_start, "the log was replaced although Redis kept its data"
        assert [u["seq"] for u in updates] == list(range(1, last + 1))
        assert [log[s] for s in range(1, last + 1)] == list(range(1, last + 1))
        assert final_doc["version"] == last

        # The store: versions 1..last, each once, each with more entries than the one before.
        counts = []
        for n in range(1, last + 1):
            stored = await service.json(f"/v1/stories/{story_id}/versions/{n}")
            assert stored is not None and stored["version"] == n, n
            counts.append(entry_count(stored["paragraphs"]))
        assert counts == sorted(set(counts)), f"a version stored twice: {counts}"
        assert counts[-1] == driver.entries
        missing = await service.get(f"/v1/stories/{story_id}/versions/{last + 1}")
        assert missing is not None and missing.status_code == 404
        raw = aioredis.Redis.from_url(chaos_redis.url, decode_responses=True)
        try:
            fields = await raw.hkeys(f"{PREFIX}{{feed:{FEED_ID}}}:story:{story_id}")
        finally:
            await raw.aclose()
        assert sorted(f for f in fields if f.startswith("v:")) == sorted(
            f"v:{n}" for n in range(1, last + 1)
        )

        # Every reader: the log, exactly; a reset only for a reason, with the latest version.
        faults: Counter[str] = Counter()
        for reader in readers:
            faults += audit(reader, log, last)
            for reset in reader.resets:
                if not reset.deliberate:
                    faults["reset without cause"] += 1
                    reader.faults.append(f"reset at {reset.seq}, cause: {reset.reason}")
                stale = max(log.get(reset.seq, 0), reset.known_before)
                if reset.version < stale:
                    faults["stale reset"] += 1
                    reader.faults.append(f"reset at {reset.seq} has v{reset.version} < v{stale}")
                stored = await service.json(f"/v1/stories/{story_id}/versions/{reset.version}")
                if stored is None or any(
                    stored[k] != reset.snapshot[k] for k in ("title", "paragraphs", "id")
                ):
                    faults["reset snapshot unlike the stored version"] += 1
                    reader.faults.append(f"reset snapshot {reset.snapshot}")
            if not reader.resets and [
                (seq, version) for _, seq, version in reader.events
            ] != sorted(log.items()):
                faults["sequence differs from the log"] += 1
            if reader.oddities:
                faults["unexpected frames"] += len(reader.oddities)

        deliberate = [r for r in readers if any(x.deliberate for x in r.resets)]
        resumed_a = {r.name for r in readers if r.home == port_a and len(r.ports) > 1}
        summary = "\n".join(
            [
                f"chaos run: {wall:.0f}s, {last} updates, {len(readers)} readers, "
                f"{sum(len(r.ports) - 1 for r in readers)} resumptions; of web A's readers "
                f"{sum(r.ports[-1] == port_a for r in readers if r.home == port_a)} ended on A, "
                f"{sum(r.ports[-1] == port_b for r in readers if r.home == port_a)} on B",
                *steps,
                *(
                    f"{r.name}: reset at seq {x.seq} to v{x.version}: {x.reason}"
                    for r in readers
                    for x in r.resets
                ),
                *(
                    f"{r.name}: {(r.faults + r.oddities)[:5]} drops {r.drops[-3:]}"
                    for r in readers
                    if r.faults or r.oddities
                ),
            ]
        )
        print(summary)
        assert not faults, f"{dict(faults)}\n{summary}"
        # The chaos really happened: web A's readers all resumed, some on A itself once back,
        # some on B; every reader told to present a foreign epoch got (only) that reset.
        assert len(resumed_a) == WS_PER_WEB + SSE_READERS // 2, summary
        assert any(r.ports[-1] == port_a for r in readers if r.name in resumed_a), summary
        assert any(port_b in r.ports for r in readers if r.home == port_a), summary
        assert len(deliberate) == sum(1 for i in range(WS_PER_WEB) if i % 12 == 5) + 2, summary
