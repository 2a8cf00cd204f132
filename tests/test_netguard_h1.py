"""The guarded keep-alive HTTP/1.1 client (netguard/h1.py) against a scripted server: what it
writes, how it reads each way an answer can end, when it reuses a connection and when not."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import pytest
import trustme

from liveupdates.netguard.h1 import BadAnswer, H1Client, Origin, target
from liveupdates.netguard.policy import AddressPolicy
from tests.support.waiting import until

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])

# How the scripted server answers the nth request it reads (over all connections).
Script = Callable[[int], bytes]


class Scripted:
    """A TCP server that reads requests (head + Content-Length body) and answers from a script;
    an answer ending in b"|close" closes the connection after it."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def origin(self) -> Origin:
        return Origin.of(f"http://127.0.0.1:{self.port}/")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.script(len(self.requests))
                close = answer.endswith(b"|close")
                writer.write(answer.removesuffix(b"|close"))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def client() -> AsyncIterator[H1Client]:
    http = H1Client(LOOPBACK, limit=4, timeout=5.0)
    yield http
    await http.aclose()


CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


async def test_a_post_carries_its_head_and_body_and_the_connection_is_kept(
    client: H1Client,
) -> None:
    async with Scripted(lambda _n: CREATED) as server:
        for body in (b"first", b"second"):
            answer = await client.post(server.origin, "/push/abc?x=1", [("TTL", "60")], body)
            assert (answer.status, answer.body) == (201, b"")
        assert server.connections == 1
        head, _, body = server.requests[1].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /push/abc?x=1 HTTP/1.1"
        assert f"Host: 127.0.0.1:{server.port}".encode() in lines
        assert b"TTL: 60" in lines and b"Content-Length: 6" in lines
        assert body == b"second"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 9\r\n\r\nslow down",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nslow\r\n5\r\n down\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_an_answer_body_and_headers_are_read_and_the_connection_reused(
    client: H1Client, answer: bytes
) -> None:
    async with Scripted(lambda _n: answer) as server:
        for _ in range(2):
            got = await client.post(server.origin, "/", [], b"x")
            assert (got.status, got.headers["retry-after"], got.body) == (429, "7", b"slow down")
        assert server.connections == 1


async def test_an_answer_that_ends_with_the_connection_is_read_to_its_end(
    client: H1Client,
) -> None:
    closing = b"HTTP/1.1 410 Gone\r\nConnection: close\r\n\r\nno such subscription|close"
    async with Scripted(lambda _n: closing) as server:
        for _ in range(2):
            got = await client.post(server.origin, "/", [], b"x")
            assert (got.status, got.body) == (410, b"no such subscription")
        assert server.connections == 2  # never reused


async def test_a_connection_the_server_closed_while_idle_is_not_used_again(
    client: H1Client,
) -> None:
    async with Scripted(lambda _n: CREATED + b"|close") as server:
        await client.post(server.origin, "/", [], b"x")
        await until(lambda: not client._open, message="the client never saw the close")
        assert (await client.post(server.origin, "/", [], b"x")).status == 201
        assert server.connections == 2


async def test_no_answer_and_a_bad_answer_are_connection_errors(client: H1Client) -> None:
    async with Scripted(lambda _n: b"|close") as server:
        with pytest.raises(ConnectionResetError):
            await client.post(server.origin, "/", [], b"x")
    async with Scripted(lambda _n: b"SMTP ready\r\n\r\n") as server:
        with pytest.raises(BadAnswer):
            await client.post(server.origin, "/", [], b"x")


async def test_an_answer_cut_short_or_never_given_fails_without_waiting_for_more() -> None:
    cut = b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nshort|close"
    http = H1Client(LOOPBACK, limit=4, timeout=0.5)
    try:
        async with Scripted(lambda _n: cut) as server:
            with pytest.raises(ConnectionResetError):
                await http.post(server.origin, "/", [], b"x")
        async with Scripted(lambda _n: b"") as server:  # reads the request, never answers
            with pytest.raises(TimeoutError):
                await http.post(server.origin, "/", [], b"x")
            await until(lambda: not http._open, message="the timed-out connection stayed open")
    finally:
        await http.aclose()


async def test_a_header_or_path_that_would_break_the_request_is_refused_unsent(
    client: H1Client,
) -> None:
    async with Scripted(lambda _n: CREATED) as server:
        for headers in ([("TTL", "60\r\nX-Injected: 1")], [("Topic", "a\nb")], [("T", "é")]):
            with pytest.raises(ValueError):
                await client.post(server.origin, "/", headers, b"x")
        assert server.requests == []
    base = "https://push.example/"
    assert target(base + "send/abc?x=1", base) == "/send/abc?x=1"
    assert target("https://push.example?x", base) == "/?x"
    for bad in ("send/a b", "send/\r\nHost: evil", "send/é", "send/a#frag"):
        with pytest.raises(ValueError):
            target(base + bad, base)


def test_an_origin_is_an_http_host_without_credentials() -> None:
    assert Origin.of("https://push.example/") == Origin("push.example", 443, True, "push.example")
    assert Origin.of("http://[::1]:9000/") == Origin("::1", 9000, False, "[::1]:9000")
    for bad in ("ftp://push.example/", "https://user:pw@push.example/", "https:///x"):
        with pytest.raises(ValueError):
            Origin.of(bad)


async def test_https_verifies_the_urls_host_name_on_the_guarded_connection() -> None:
    """The connect goes to the checked address; TLS still checks (and sends SNI for) the URL's
    host name, so a certificate for another name is refused before anything is sent."""
    ca = trustme.CA()
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    names: list[str | None] = []

    def seen(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    for cert_name, ok in (("localhost", True), ("push.example", False)):
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(cert_name).configure_cert(server_tls)
        server_tls.sni_callback = seen  # type: ignore[assignment]
        http = H1Client(LOOPBACK, limit=4, timeout=5.0, ssl_context=client_tls)
        try:
            async with Scripted(lambda _n: CREATED, tls=server_tls) as server:
                where = Origin.of(f"https://localhost:{server.port}/")
                if ok:
                    assert (await http.post(where, "/push/x", [], b"x")).status == 201
                else:
                    with pytest.raises(ssl.SSLCertVerificationError):
                        await http.post(where, "/push/x", [], b"x")
                    assert server.requests == []
        finally:
            await http.aclose()
    assert names == ["localhost", "localhost"]
