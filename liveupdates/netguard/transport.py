"""The guard at connect time: an httpx transport that resolves a host, checks every address
against an `AddressPolicy`, and connects to a checked address only.

Checking the address actually connected (not a name resolved earlier) leaves no DNS-rebinding
window, and since the guard sits under httpx's connection pool every connection is checked: the
first request's, each redirect hop's, any later one's. TLS still verifies (and sends SNI for) the
URL's host name, and the Host header stays the URL's: only the TCP connect uses the IP. A host
name's addresses are reused for RESOLVE_TTL seconds (the check is not: it runs on every connect).

    client = guarded_client(AddressPolicy.allowing(settings.fetch_allow_networks), timeout=10)

httpx has no public way to hand its default transport a network backend (httpx PR #3749 adds
one); `GuardedTransport` replaces the connection pool the default transport builds, which is the
one attribute it touches.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import select
import socket
import ssl
import time
import weakref
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from liveupdates.netguard.policy import AddressPolicy, AddressRefused, IPAddress

# httpx's default of 100 connections (a transport passed in replaces the client's limits), all of
# them kept alive: httpcore 1.0 closes every connection that turns idle while the pool holds more
# than `max_keepalive_connections` in all (busy ones counted; encode/httpcore PR #1000), so a
# poller with more polls in flight than that opened a new connection for nearly every request.
# Idle connections still close after the keep-alive expiry (5 s), or when the server closes them.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)

Endpoint = tuple[str, int]  # (host as the URL spells it, port)
# How long a host name's addresses are reused for new connections. The system resolver gives no
# TTL; a poller opening a connection per poll of each feed would otherwise ask it every time.
# Every connect still checks the address it dials against the policy.
RESOLVE_TTL = 30.0
RESOLVE_CACHE_SIZE = 4096  # expired entries are dropped when it holds more


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to, in the resolver's order, without duplicates.

    The system resolver also reads what `inet_aton` reads, so `0x7f000001`, `2130706433`,
    `017700000001` and `127.1` all come back as 127.0.0.1 and are judged as that."""
    with contextlib.suppress(ValueError):
        # An address in its standard form needs no resolver (nor a trip to its thread pool).
        return [ipaddress.ip_address(host)]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(sockaddr[0]), None)
    return list(seen)


async def checked_addresses(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """The addresses of `host` the policy allows; AddressRefused (naming the first address)
    when there is none. Resolver errors (OSError) pass through."""
    return allowed_addresses(host, await resolve(host, port), policy)


def allowed_addresses(
    host: str, addresses: list[IPAddress], policy: AddressPolicy
) -> list[IPAddress]:
    """The `addresses` of `host` the policy allows; AddressRefused (naming the first address)
    when there is none."""
    allowed = [a for a in addresses if policy.refusal(a) is None]
    if not allowed:
        reason = policy.refusal(addresses[0]) if addresses else None
        raise AddressRefused(reason or f"host {host} has no address")
    return allowed


async def check_url_address(url: str, policy: AddressPolicy, *, timeout: float) -> None:
    """Raise AddressRefused if `url`'s host resolves only to refused addresses.

    For early feedback (the admin API refuses such a feed); the connect-time guard still checks
    every connection. A host that does not resolve (now) is not refused here: that is a fetch
    error the feed's health will show."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return  # malformed; the fetch reports it
    try:
        async with asyncio.timeout(timeout):
            await checked_addresses(host, port, policy)
    except (OSError, TimeoutError):
        return


def _readable(sock: socket.socket | None) -> bool:
    """Whether a read would not block (data, or the peer's close); a socket gone counts as
    readable, as httpcore counts it."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class CheckedStream(httpcore.AsyncNetworkStream):
    """httpcore's stream of one guarded connection, answering "is_readable" from its socket.

    httpcore's pool asks every idle connection "is_readable" (did the server close it?) on every
    request it assigns, and anyio answers by building its whole table of socket attributes, a
    getpeername() call included: with 50 connections kept alive the check took 16-19% of a
    poll worker's samples, about half of it that table. The socket is looked up once, at
    connect (a TLS stream wraps the same socket). Within a `GuardedPool` pass the answer comes
    from one poll(2) over all of the backend's open streams (`note_readable`), not one each.

    `streams`: the backend's set of open streams, which this one joins until closed."""

    def __init__(
        self, inner: httpcore.AsyncNetworkStream, streams: weakref.WeakSet[CheckedStream]
    ) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._streams = streams
        # Whether it was readable at the start of the pool's current pass; None outside one.
        self.noted: bool | None = None
        streams.add(self)

    def fileno(self) -> int:
        return -1 if self._socket is None else self._socket.fileno()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        self._streams.discard(self)
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        # The plain stream lives on inside the TLS one, over the same socket: one entry is enough.
        self._streams.discard(self)
        return CheckedStream(inner, self._streams)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket) if self.noted is None else self.noted
        return self._inner.get_extra_info(info)


def note_readable(streams: Iterable[CheckedStream]) -> list[CheckedStream]:
    """Poll every stream's socket at once and keep the answer in each (`noted`) until `unnote`:
    one system call where httpcore's pass makes one per idle connection, each of them giving up
    the GIL to the store's and the parser's threads. The streams noted are returned."""
    noted = list(streams)
    if not hasattr(select, "poll") or not noted:
        return []
    poller = select.poll()
    for stream in noted:
        fd = stream.fileno()
        if fd >= 0:
            poller.register(fd, select.POLLIN)
    # Any event counts, as in `_readable`: data, the peer's close, an error, a closed descriptor.
    ready = {fd for fd, _events in poller.poll(0)}
    for stream in noted:
        fd = stream.fileno()
        stream.noted = fd < 0 or fd in ready
    return noted


def unnote(streams: Iterable[CheckedStream]) -> None:
    for stream in streams:
        stream.noted = None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects to policy-checked addresses only.

    `exempt` endpoints (host, port) are connected as they are: the service's own address for its
    demo feed, which ops configured rather than anyone outside."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        exempt: Collection[Endpoint] = (),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.exempt = frozenset(exempt)
        self._inner = inner or httpcore.AnyIOBackend()
        self.streams: weakref.WeakSet[CheckedStream] = weakref.WeakSet()  # open ones
        self._resolved: dict[Endpoint, tuple[float, list[IPAddress]]] = {}  # (expiry, addresses)

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        """`host`'s allowed addresses, resolved at most once per RESOLVE_TTL, checked each time."""
        now = time.monotonic()
        cached = self._resolved.get((host, port))
        if cached is None or cached[0] <= now:
            if len(self._resolved) > RESOLVE_CACHE_SIZE:
                self._resolved = {k: v for k, v in self._resolved.items() if v[0] > now}
            cached = (now + RESOLVE_TTL, await resolve(host, port))
            self._resolved[(host, port)] = cached
        return allowed_addresses(host, cached[1], self.policy)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if (host, port) in self.exempt:
            return CheckedStream(
                await self._inner.connect_tcp(host, port, timeout, local_address, socket_options),
                self.streams,
            )
        # One deadline for resolving and connecting, as for an unguarded connect.
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await self._addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for index, address in enumerate(addresses):
            share = None
            if deadline is not None:
                # An even share of the time left: one unreachable address (a host's IPv6 on a
                # network without IPv6 routing) cannot use up the time the next one needs.
                share = max(deadline - loop.time(), 0.0) / (len(addresses) - index)
            try:
                return CheckedStream(
                    await self._inner.connect_tcp(
                        str(address), port, share, local_address, socket_options
                    ),
                    self.streams,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # `addresses` is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the address guard connects to TCP addresses only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedPool(httpcore.AsyncConnectionPool):
    """httpcore 1.0's connection pool, with its assignment pass made linear and an HTTP/1.1
    connection handed to one request at a time.

    The pool runs `_assign_requests_to_connections` whenever a request arrives or ends. httpcore's
    pass asks every connection for `is_idle` once per idle connection (it counts the pool inside
    its loop), and gives every queued request the first connection that `is_available`, even one
    a request assigned in an earlier pass has not started on yet: all but one of those requests
    then get `ConnectionNotAvailable` and go round again, each time with another whole pass. In a
    poll worker (50 polls in flight over ~50 kept-alive connections) that was about 5.8 passes
    of ~2,000 `is_idle` calls per request, the largest share of the worker's CPU per 304. The
    rules are otherwise httpcore's: the same connections are dropped (closed, expired, idle while
    the pool holds more than `max_keepalive_connections`), created and reused, in the same order.
    A pass asks the sockets whether their server closed them with one poll(2) for all of them
    (`note_readable`).
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        # httpcore compares the pool's size at that moment, connections not yet looked at and
        # those already dropped in this pass excluded.
        size = len(self._connections)
        backend = self._network_backend
        # `has_expired` asks each idle connection's socket whether the server closed it.
        noted = (
            note_readable(backend.streams)
            if size > 1 and isinstance(backend, GuardedBackend)
            else []
        )
        try:
            for connection in self._connections:
                if connection.is_closed():
                    size -= 1
                elif connection.has_expired() or (
                    connection.is_idle() and size > self._max_keepalive_connections
                ):
                    size -= 1
                    closing.append(connection)
                else:
                    kept.append(connection)
        finally:
            unnote(noted)
        self._connections[:] = kept

        queued = [request for request in self._requests if request.is_queued()]
        if not queued:
            return closing
        # An HTTP/1.1 connection serves one request: one assigned to a request that has not sent
        # on it yet is still idle, but not for another. (HTTP/2 ones take several.)
        taken = (
            set()
            if self._http2
            else {id(r.connection) for r in self._requests if r.connection is not None}
        )
        for pool_request in queued:
            origin = pool_request.request.url.origin
            reused = next(
                (
                    c
                    for c in self._connections
                    if id(c) not in taken and c.can_handle_request(origin) and c.is_available()
                ),
                None,
            )
            if reused is not None:
                connection = reused
            else:
                if len(self._connections) >= self._max_connections:
                    # Not one another request is about to use: closed under it, that request
                    # would have to go round again.
                    idle = next(
                        (c for c in self._connections if id(c) not in taken and c.is_idle()), None
                    )
                    if idle is None:
                        continue  # it waits for the next pass: a request ends or arrives
                    self._connections.remove(idle)
                    closing.append(idle)
                connection = self.create_connection(origin)
                self._connections.append(connection)
            taken.add(id(connection))
            pool_request.assign_to_connection(connection)
        return closing


# GuardedPool replaces a private method of httpcore 1.0's pool and reads its private state; under
# another httpcore the stock pool is used (slower under load, same behaviour) rather than a
# pass written for internals that may have changed.
_POOL: type[httpcore.AsyncConnectionPool] = (
    GuardedPool
    if httpcore.__version__.startswith("1.0.")
    and hasattr(httpcore.AsyncConnectionPool, "_assign_requests_to_connections")
    else httpcore.AsyncConnectionPool
)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's default async transport (HTTP/1.1, TLS verified, no proxy) over a GuardedBackend;
    `http2` offers HTTP/2 too (negotiated by TLS ALPN), as APNs requires.

    No proxy on purpose: through a proxy the guard would only see the proxy's address."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        exempt: Collection[Endpoint] = (),
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
        http2: bool = False,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits, http2=http2)
        self._pool = _POOL(
            ssl_context=ssl_context,
            http2=http2,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, exempt=exempt),
        )


def endpoint(url: str | httpx.URL) -> Endpoint:
    """(host, port) of `url` as httpcore hands them to the network backend."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.raw_host.decode("ascii"), port


def guarded_client(
    policy: AddressPolicy,
    *,
    exempt: Collection[Endpoint] = (),
    verify: ssl.SSLContext | bool = True,
    http2: bool = False,
    **client_options: Any,
) -> httpx.AsyncClient:
    """An httpx.AsyncClient whose every connection passes the guard."""
    transport = GuardedTransport(policy, exempt=exempt, verify=verify, http2=http2)
    return httpx.AsyncClient(transport=transport, **client_options)
