"""The outbound address guard: no fetch reaches a loopback, private, link-local or otherwise
non-public address unless `fetch.allow_networks` allows it, whatever form the URL or a redirect
gives the address in. Real fetches against real loopback servers; a refused one never arrives.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import trustme

from liveupdates.feeds.fetch import Fetcher
from liveupdates.ingest import Ingestor
from liveupdates.models import FeedConfig, FetchState
from liveupdates.netguard import AddressPolicy, AddressRefused, parse_networks
from liveupdates.netguard.transport import (
    GuardedBackend,
    GuardedPool,
    GuardedTransport,
    guarded_client,
    note_readable,
    unnote,
)
from liveupdates.settings import SettingsError, load_settings
from liveupdates.store.sqlite import SQLiteStore
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import bridge_story, rss

LOOPBACK = "address 127.0.0.1 is loopback; see fetch.allow_networks"
RSS_BODY = rss([bridge_story()])


def refusal(address: str, *allow: str) -> str | None:
    return AddressPolicy.allowing(allow).refusal(address)


# -- the rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "address 127.0.0.1 is loopback"),
        ("127.0.0.2", "address 127.0.0.2 is loopback"),
        ("10.0.0.1", "address 10.0.0.1 is private"),
        ("172.16.5.4", "address 172.16.5.4 is private"),
        ("192.168.1.1", "address 192.168.1.1 is private"),
        ("169.254.169.254", "address 169.254.169.254 is link-local"),
        ("100.64.0.1", "address 100.64.0.1 is private"),
        ("0.0.0.0", "address 0.0.0.0 is unspecified"),
        ("224.0.0.251", "address 224.0.0.251 is multicast"),
        ("240.0.0.1", "address 240.0.0.1 is private"),
        ("192.0.0.8", "address 192.0.0.8 is reserved"),
        ("::1", "address ::1 is loopback"),
        ("::", "address :: is unspecified"),
        ("fe80::1", "address fe80::1 is link-local"),
        ("fe80::1%lo", "address fe80::1 is link-local"),
        ("fd00::1", "address fd00::1 is private"),
        ("fec0::1", "address fec0::1 is private"),
        ("ff02::1", "address ff02::1 is multicast"),
        (
            "::ffff:127.0.0.1",
            "address ::ffff:127.0.0.1 is loopback (IPv4-mapped form of 127.0.0.1)",
        ),
        ("::ffff:10.1.2.3", "address ::ffff:10.1.2.3 is private (IPv4-mapped form of 10.1.2.3)"),
        ("2002:7f00:1::", "address 2002:7f00:1:: is loopback (6to4 form of 127.0.0.1)"),
        (
            "2002:a9fe:a9fe::1",
            "address 2002:a9fe:a9fe::1 is link-local (6to4 form of 169.254.169.254)",
        ),
        ("64:ff9b::7f00:1", "address 64:ff9b::7f00:1 is loopback (NAT64 form of 127.0.0.1)"),
        ("64:ff9b:1::a00:1", "address 64:ff9b:1::a00:1 is private"),
        ("::7f00:1", "address ::7f00:1 is loopback (IPv4-compatible form of 127.0.0.1)"),
    ],
)
def test_non_public_addresses_are_refused_with_the_reason(address: str, reason: str) -> None:
    assert refusal(address) == reason


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:85e5", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


def test_allow_networks_opens_exactly_what_it_names() -> None:
    assert refusal("127.0.0.1", "127.0.0.1/32") is None
    assert refusal("127.0.0.2", "127.0.0.1/32") == "address 127.0.0.2 is loopback"
    assert refusal("10.20.3.4", "127.0.0.0/8", "10.20.0.0/16") is None
    assert refusal("10.21.0.1", "127.0.0.0/8", "10.20.0.0/16") == "address 10.21.0.1 is private"
    assert refusal("fd12::5", "fd12::/16") is None
    # The IPv4-mapped form is the same host, so it shares the allowance...
    assert refusal("::ffff:127.0.0.1", "127.0.0.1/32") is None
    # ...but 6to4 and NAT64 reach the IPv4 address through a gateway: not allowed by it.
    assert refusal("2002:7f00:1::", "127.0.0.1/32") is not None
    assert refusal("::1", "127.0.0.0/8") == "address ::1 is loopback"


def test_refusal_names_the_setting() -> None:
    with pytest.raises(AddressRefused) as caught:
        AddressPolicy().check("10.0.0.1")
    assert str(caught.value) == "address 10.0.0.1 is private; see fetch.allow_networks"


def test_the_setting_reads_cidrs_and_names_a_bad_one() -> None:
    settings = load_settings({"LIVEUPDATES_FETCH_ALLOW_NETWORKS": "127.0.0.0/8, 10.20.0.0/16"})
    assert settings.fetch_allow_networks == ("127.0.0.0/8", "10.20.0.0/16")
    assert load_settings({}).fetch_allow_networks == ()
    for bad in ("10.0.0.0/33", "intranet", "10.0.0.0/8,300.1.1.1"):
        with pytest.raises(SettingsError) as caught:
            load_settings({"LIVEUPDATES_FETCH_ALLOW_NETWORKS": bad})
        message = str(caught.value)
        assert "fetch_allow_networks" in message
        assert repr(bad.split(",")[-1]) in message
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks(["10.0.0.0/8", "nope"])


# -- fetching ---------------------------------------------------------------------------------


@pytest.fixture
def inner_server() -> Iterator[FeedServer]:
    """A second feed server on 127.0.0.2: the 'internal' host a hostile feed points at."""
    with FeedServer(host="127.0.0.2") as server:
        yield server


async def fetch(url: str, *allow: str) -> tuple[str, str | None, bytes | None]:
    async with Fetcher(allow_networks=allow, total_timeout=5.0) as fetcher:
        result = await fetcher.fetch(url, FetchState())
    return result.status, result.error, result.body


async def test_a_loopback_feed_is_refused_unless_allowed(feed_server: FeedServer) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    assert await fetch(feed_server.url("/a.xml")) == ("error", LOOPBACK, None)
    assert feed_server.count("/a.xml") == 0
    status, _error, body = await fetch(feed_server.url("/a.xml"), ALLOW_LOOPBACK)
    assert status == "ok" and body and feed_server.count("/a.xml") == 1


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "017700000001", "127.1", "localhost"])
async def test_numeric_tricks_and_names_are_judged_by_the_address_they_reach(
    feed_server: FeedServer, host: str
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    url = f"http://{host}:{feed_server.port}/a.xml"
    status, error, _ = await fetch(url)
    assert (status, error) == ("error", LOOPBACK)
    assert feed_server.count("/a.xml") == 0
    # The same URL does reach the server once loopback is allowed: the refusal was the guard.
    status, error, _ = await fetch(url, ALLOW_LOOPBACK, "::1/128")
    assert status == "ok", error


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("[::1]", "address ::1 is loopback"),
        (
            "[::ffff:127.0.0.1]",
            "address ::ffff:127.0.0.1 is loopback (IPv4-mapped form of 127.0.0.1)",
        ),
        ("[2002:7f00:1::]", "address 2002:7f00:1:: is loopback (6to4 form of 127.0.0.1)"),
        ("10.0.0.1", "address 10.0.0.1 is private"),
        ("169.254.169.254", "address 169.254.169.254 is link-local"),
    ],
)
async def test_literal_addresses_are_refused_before_any_connect(host: str, reason: str) -> None:
    status, error, _ = await fetch(f"http://{host}:9/feed.xml")
    assert (status, error) == ("error", f"{reason}; see fetch.allow_networks")


async def test_a_closed_port_looks_the_same_as_an_open_one_when_refused(
    feed_server: FeedServer,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    feed_server.set("/a.xml", rss([bridge_story()]))
    open_result = await fetch(feed_server.url("/a.xml"))
    closed_result = await fetch(f"http://127.0.0.1:{closed}/a.xml")
    assert open_result == closed_result == ("error", LOOPBACK, None)


async def test_a_redirect_to_a_refused_address_is_not_followed(
    feed_server: FeedServer, inner_server: FeedServer
) -> None:
    inner_server.set("/secret.xml", rss([bridge_story(title="Internal only")]))
    feed_server.set("/public.xml", redirect_to=inner_server.url("/secret.xml"))
    # The origin's exact address is allowed, the redirect target is not.
    status, error, body = await fetch(feed_server.url("/public.xml"), ALLOW_LOOPBACK)
    assert (status, error, body) == (
        "error",
        "address 127.0.0.2 is loopback; see fetch.allow_networks",
        None,
    )
    assert feed_server.count("/public.xml") == 1
    assert inner_server.count("/secret.xml") == 0
    # Numeric forms in the Location header are caught the same way.
    trick = f"http://0x7f000002:{inner_server.port}/secret.xml"
    feed_server.set("/public.xml", redirect_to=trick)
    status, error, _ = await fetch(feed_server.url("/public.xml"), ALLOW_LOOPBACK)
    assert error == "address 127.0.0.2 is loopback; see fetch.allow_networks"
    assert inner_server.count("/secret.xml") == 0
    # Allowing the target's network lets the same redirect through.
    status, error, body = await fetch(feed_server.url("/public.xml"), "127.0.0.0/8")
    assert status == "ok" and body and b"Internal only" in body, error
    assert inner_server.count("/secret.xml") == 1


async def test_a_refused_feed_shows_the_reason_in_its_health(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/a.xml", rss([bridge_story()]))
    store = SQLiteStore(tmp_path / "lu.sqlite3")
    feed = FeedConfig(id="gazette", url=feed_server.url("/a.xml"))
    await store.upsert_feed(feed)
    try:
        async with Fetcher() as fetcher:
            report = await Ingestor(store, fetcher).poll(feed)
        assert report.outcome.status == "error"
        health = await store.feed_health("gazette")
        assert health is not None
        assert health.last_error == LOOPBACK
        assert health.fetch.consecutive_errors == 1
        assert health.stories == 0
    finally:
        await store.close()


async def test_the_demo_feed_on_the_services_own_address_is_always_allowed(
    tmp_path: Path, feed_server: FeedServer, inner_server: FeedServer
) -> None:
    feed_server.set("/demo/feed.xml", rss([bridge_story()]))
    inner_server.set("/secret.xml", rss([bridge_story(title="Internal only")]))
    store = SQLiteStore(tmp_path / "lu.sqlite3")
    try:
        async with Fetcher() as fetcher:
            ingestor = Ingestor(store, fetcher, self_url=feed_server.base_url)
            demo = FeedConfig(id="demo", url="{self}/demo/feed.xml")
            report = await ingestor.poll(demo)
            assert report.outcome.status == "ok" and len(report.events) == 1
            # The exemption is the service's own host and port, not whatever follows `{self}`...
            sneaky = FeedConfig(
                id="sneaky", url=f"{{self}}@127.0.0.2:{inner_server.port}/secret.xml"
            )
            report = await ingestor.poll(sneaky)
            assert report.outcome.error == "address 127.0.0.2 is loopback; see fetch.allow_networks"
            # ...nor where it redirects to...
            feed_server.set("/demo/feed.xml", redirect_to=inner_server.url("/secret.xml"))
            report = await ingestor.poll(demo)
            assert report.outcome.error == "address 127.0.0.2 is loopback; see fetch.allow_networks"
            # ...nor the same address written out in a feed that is not `{self}`.
            feed_server.set("/demo/feed.xml", rss([bridge_story()]))
            literal = FeedConfig(id="literal", url=feed_server.url("/demo/feed.xml"))
            report = await ingestor.poll(literal)
            assert report.outcome.error == LOOPBACK
        assert inner_server.count("/secret.xml") == 0
    finally:
        await store.close()


async def test_a_host_name_is_resolved_once_per_ttl_and_checked_on_every_connect(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    loop = asyncio.get_running_loop()
    getaddrinfo = loop.getaddrinfo

    async def counted(host: str, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        return await getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counted)
    port = int(feed_server.url("/").rsplit(":", 1)[1].split("/")[0])
    backend = GuardedBackend(AddressPolicy.allowing([ALLOW_LOOPBACK]))
    for _ in range(3):  # three connections, one lookup
        stream = await backend.connect_tcp("localhost", port, timeout=5.0)
        await stream.aclose()
    assert lookups == ["localhost"]
    # The addresses are remembered, not the verdict: a policy that refuses them now refuses.
    backend.policy = AddressPolicy()
    with pytest.raises(AddressRefused, match=re.escape(LOOPBACK)):
        await backend.connect_tcp("localhost", port, timeout=5.0)
    assert lookups == ["localhost"]


async def test_the_guarded_client_serves_any_outbound_request(feed_server: FeedServer) -> None:
    feed_server.set("/hub", "ok", content_type="text/plain")
    async with guarded_client(AddressPolicy()) as client:
        with pytest.raises(AddressRefused, match=re.escape(LOOPBACK)):
            await client.post(feed_server.url("/hub"))
    async with guarded_client(AddressPolicy.allowing([ALLOW_LOOPBACK])) as client:
        response = await client.get(feed_server.url("/hub"))
        assert response.status_code == 200 and response.text == "ok"


async def test_tls_checks_the_url_host_name_while_the_checked_address_is_dialled() -> None:
    """The guard connects to an IP, but TLS must still send SNI for, and verify the certificate
    against, the URL's host name; the Host header stays the name too."""
    ca = trustme.CA()
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    names: list[str | None] = []
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_tls)

    def seen(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    server_tls.sni_callback = seen  # type: ignore[assignment]
    policy = AddressPolicy.allowing([ALLOW_LOOPBACK])
    with FeedServer(tls=server_tls) as server:
        server.set("/a.xml", rss([bridge_story()]))
        url = f"https://localhost:{server.port}/a.xml"
        async with guarded_client(policy, verify=client_tls) as client:
            response = await client.get(url)
        assert response.status_code == 200
        assert names == ["localhost"]
        assert server.requests("/a.xml")[0].headers["host"] == f"localhost:{server.port}"
        # A certificate for another name fails verification: it is really checked, by name.
        other_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("gazette.example").configure_cert(other_tls)
    with FeedServer(tls=other_tls) as other:
        other.set("/a.xml", rss([bridge_story()]))
        async with guarded_client(policy, verify=client_tls) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.get(f"https://localhost:{other.port}/a.xml")
        assert other.count("/a.xml") == 0


class CountedPool(GuardedPool):
    """GuardedPool as it is, counting its assignment passes."""

    passes = 0

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        self.passes += 1
        return super()._assign_requests_to_connections()


def test_the_guarded_transport_uses_the_linear_pool_under_this_httpcore() -> None:
    """The fallback to httpcore's own pool is for another httpcore, not this one."""
    transport = GuardedTransport(AddressPolicy.allowing([ALLOW_LOOPBACK]))
    assert isinstance(transport._pool, GuardedPool)


@pytest.mark.parametrize("max_connections", [100, 3])
async def test_the_pool_hands_an_idle_connection_to_one_request_at_a_time(
    feed_server: FeedServer, max_connections: int
) -> None:
    """30 requests always in flight: each is assigned a connection once (no request goes round
    again because another took the same one first), and the pool keeps to its limit, also when
    requests have to wait for a connection."""
    paths = [f"/pooled{i}.xml" for i in range(30)]
    for path in paths:
        feed_server.set(path, RSS_BODY, delay=0.01)
    pool = CountedPool(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        network_backend=GuardedBackend(AddressPolicy.allowing([ALLOW_LOOPBACK])),
    )
    gate = asyncio.Semaphore(30)

    async def get(path: str) -> int:
        async with gate:
            response = await pool.request("GET", feed_server.url(path))
            return response.status

    async with pool:
        statuses = await asyncio.gather(*(get(p) for p in paths * 4))
    assert statuses == [200] * 120
    clients = {r.client for p in paths for r in feed_server.requests(p)}
    assert len(clients) <= min(30, max_connections)
    if max_connections == 100:
        # One pass when a request arrives, one when it ends.
        assert pool.passes <= 2 * 120


async def test_one_poll_tells_which_idle_connections_the_server_closed() -> None:
    """What a pool pass reads instead of asking each socket: the same answer, for all at once."""
    writers: list[asyncio.StreamWriter] = []
    all_in = asyncio.Event()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if len(writers) == 3:
            all_in.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = GuardedBackend(AddressPolicy.allowing([ALLOW_LOOPBACK]))
    try:
        streams = [await backend.connect_tcp("127.0.0.1", port, timeout=5.0) for _ in range(3)]
        await asyncio.wait_for(all_in.wait(), 5.0)
        # The server closes the first connection it accepted: find which client socket that is.
        closed_port = writers[0].get_extra_info("peername")[1]
        writers[0].close()
        await writers[0].wait_closed()
        by_port = {s.get_extra_info("socket").getsockname()[1]: s for s in streams}
        gone = by_port[closed_port]
        # Wait for the close to reach the client's socket (blocks until it is readable).
        await asyncio.to_thread(select.select, [gone.get_extra_info("socket")], [], [], 5.0)
        live = [s.get_extra_info("is_readable") for s in streams]
        noted = note_readable(backend.streams)
        assert sorted(map(id, noted)) == sorted(map(id, streams))
        assert [s.get_extra_info("is_readable") for s in streams] == live
        assert live == [s is gone for s in streams]
        unnote(noted)
        assert [s.noted for s in streams] == [None] * 3  # outside a pass: the socket is asked
        await streams[1].aclose()
        assert len(backend.streams) == 2  # a closed stream is no longer polled
    finally:
        for s in streams:
            await s.aclose()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()
