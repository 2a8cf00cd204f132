"""A guarded keep-alive HTTP/1.1 client for many small requests to a few services (Web Push).

A notification burst is tens of thousands of small POSTs to one or two push services, so what a
request costs the client is most of what a send costs. Measured on loopback (keep-alive POSTs,
64 in flight): aiohttp's client ~117 µs of CPU per request, h11 (through uvicorn) 80-100 µs,
this client ~29 µs. The response is still read by a real parser, aiohttp's llhttp-based
`aiohttp.http.HttpResponseParser` (lengths, chunked bodies, close-delimited bodies, size limits);
only the request head is written here, and its parts are checked before it is.

Every connection passes the address guard: the host is resolved, each address is checked against
the policy (an IP literal as it is), and the connect goes to a checked address. TLS verifies the
URL's host name. No proxy, no redirects, no cookies. An idle connection is reused for at most
IDLE_SECONDS (a service closes idle ones on its own schedule; a request on one it has just
closed would fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpProcessingError, HttpResponseParser

from liveupdates.netguard.policy import AddressPolicy
from liveupdates.netguard.transport import checked_addresses

IDLE_SECONDS = 5.0
MAX_ANSWER_BODY = 64 * 1024  # more is not read (and the connection is not reused)
# A request target as sent: a path and query of visible ASCII, no fragment. Anything else in a
# URL from outside is refused rather than re-encoded.
_TARGET = re.compile(r"/[!-\"$-~]*")
_AUTHORITY = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


class BadAnswer(ConnectionError):
    """The service's answer was not HTTP/1.1 as it must be, or came unasked."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: what is connected to and what the Host header says."""

    host: str  # as resolved and as TLS checks it (no brackets)
    port: int
    tls: bool
    authority: str  # the Host header

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an http(s) URL; ValueError when it has none a request could go to."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in the URL")
        if not _AUTHORITY.fullmatch(parts.netloc):
            raise ValueError("unexpected characters in the host")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, tls, parts.netloc)


def target(url: str, origin_part: str) -> str:
    """The request target of `url` whose "scheme://authority/" is `origin_part`; ValueError when
    it holds characters a request line cannot carry."""
    rest = url[len(origin_part) - 1 :]
    if not rest.startswith("/"):
        rest = "/" + rest.lstrip("/")
    if not _TARGET.fullmatch(rest):
        raise ValueError("unexpected characters in the path")
    return rest


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


class _Connection(BaseProtocol):
    """One connection: a request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: H1Client) -> None:
        super().__init__(loop)
        self._client = client
        parser = HttpResponseParser(
            self,
            loop,
            2**16,
            response_with_body=True,
            read_until_eof=True,
            auto_decompress=False,
        )
        # BaseProtocol's flow control pauses and resumes its `_parser` (typed optional there).
        self._parser = self._reader = parser
        self._waiter: asyncio.Future[tuple[Any, Any]] | None = None
        self._payload: Any = None  # the body being read (aiohttp's StreamReader)
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._client._open.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            messages, _upgraded, _tail = self._reader.feed_data(data)
        except HttpProcessingError as exc:
            self._fail(BadAnswer(f"bad HTTP answer: {exc.message}"))
            return
        for message, payload in messages:
            waiter, self._waiter = self._waiter, None
            if waiter is None or waiter.done():
                self._fail(BadAnswer("an answer nobody asked for"))
                return
            self._payload = payload
            waiter.set_result((message, payload))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._client._open.discard(self)
        with contextlib.suppress(HttpProcessingError):
            self._reader.feed_eof()  # ends a body that runs to the close
        self._end(ConnectionResetError("the service closed the connection"))
        super().connection_lost(exc)

    def _end(self, exc: Exception) -> None:
        """Whoever waits for the answer or its body gets `exc`."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self._payload is not None and not self._payload.is_eof():
            self._payload.set_exception(exc)

    def _fail(self, exc: Exception) -> None:
        self._end(exc)
        self.close()

    def expire(self) -> None:
        self._fail(TimeoutError("no answer in time"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, request: bytes) -> tuple[Any, Any]:
        assert self.transport is not None and self._waiter is None
        self._waiter = self._loop.create_future()
        self.transport.write(request)
        return await self._waiter


class H1Client:
    """Requests over a pool of guarded keep-alive connections, at most `limit` at once."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        limit: int = 100,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._timeout = timeout
        self._limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open: set[_Connection] = set()

    async def post(
        self, origin: Origin, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Answer:
        """POST `body` to `path` at `origin`. AddressRefused when the guard refuses every address,
        ValueError for a header that would break the request head, OSError / TimeoutError when no
        answer came (BadAnswer, a ConnectionError, for one that was not HTTP)."""
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
        # One line per header: a CR or LF inside a name or value would start another one.
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise ValueError("line break in a header")
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {origin.authority}\r\n{lines}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode("ascii") + body  # UnicodeEncodeError is a ValueError
        loop = asyncio.get_running_loop()
        async with self._slots:
            deadline = loop.time() + self._timeout
            connection = self._reuse(origin)
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(origin)
            # A timer rather than asyncio.timeout for the exchange (one handle, no context
            # manager or task bookkeeping per request): on expiry the connection fails its
            # waiters and is dropped.
            timer = loop.call_at(deadline, connection.expire)
            try:
                message, payload = await connection.exchange(request)
                parts: list[bytes] = []
                size = 0
                while size <= MAX_ANSWER_BODY and not payload.at_eof():
                    parts.append(await payload.readany())
                    size += len(parts[-1])
                reusable = payload.at_eof() and not message.should_close
            except BaseException:
                connection.close()
                raise
            finally:
                timer.cancel()
        if reusable and not connection.closed:
            self._keep(origin, connection)
        else:
            connection.close()
        return Answer(message.code, message.headers, b"".join(parts)[:MAX_ANSWER_BODY])

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        fresh_after = time.monotonic() - IDLE_SECONDS
        while idle:
            connection = idle.pop()  # the most recently used first
            self._idle_count -= 1
            if connection.closed:
                continue
            if connection.idle_since < fresh_after:
                # The rest were idle longer still.
                connection.close()
                for older in idle:
                    older.close()
                self._idle_count -= len(idle)
                idle.clear()
                return None
            return connection
        return None

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        if self._idle_count >= self._limit:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        addresses = await checked_addresses(origin.host, origin.port, self.policy)
        failure: OSError | None = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self),
                    host=str(address),
                    port=origin.port,
                    ssl=(self._ssl or _default_ssl()) if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
            except OSError as exc:
                failure = exc
                continue
            return connection
        assert failure is not None  # checked_addresses is never empty
        raise failure

    async def aclose(self) -> None:
        for connection in tuple(self._open):
            connection.close()
        self._idle.clear()
        self._idle_count = 0


@functools.cache
def _default_ssl() -> ssl.SSLContext:
    """The system's trust store, host names checked (made once: it loads the store)."""
    return ssl.create_default_context()
