"""A real HTTP feed server on 127.0.0.1 for tests and benchmarks.

Pytest fixture (this module is a plugin listed in tests/conftest.py)::

    async def test_poll(feed_server):
        feed_server.set("/news.xml", rss_bytes, etag=True)
        url = feed_server.url("/news.xml")          # http://127.0.0.1:<port>/news.xml
        ...
        assert feed_server.count("/news.xml") == 2
        assert feed_server.requests("/news.xml")[-1].headers["if-none-match"] == '"…"'

Outside pytest (e.g. a benchmark)::

    with FeedServer() as server:     # or server = FeedServer(); server.start(); ...; server.stop()
        server.set("/a.xml", body)

API
---
``ALLOW_LOOPBACK``
    The `fetch.allow_networks` value that lets a fetcher reach this server (127.0.0.1 only): the
    address guard refuses loopback by default, so every fetcher, service or `liveupdates`
    process a test points at a FeedServer needs it (``Fetcher(allow_networks=[ALLOW_LOOPBACK])``,
    ``Settings(fetch_allow_networks=(ALLOW_LOOPBACK,))``, ``LIVEUPDATES_FETCH_ALLOW_NETWORKS``).
``FeedServer.url(path) -> str``
    Absolute URL of `path` on this server.
``FeedServer.set(path, body, *, content_type=..., status=200, headers=None, etag=False,
last_modified=False, delay=0.0, redirect_to=None, gzip=False, trickle=0.0)``
    Serve `body` (bytes, or str encoded as UTF-8) at `path`; call again to rewrite it between
    polls. Behaviours, all per path:

    - ``etag=True``: strong ETag from the content hash; 304 when If-None-Match matches.
    - ``last_modified=True``: Last-Modified, bumped on every content change (always by at least
      one second, so quick rewrites stay distinguishable); 304 when If-Modified-Since is not older.
    - ``delay=s``: wait `s` seconds before answering (a slow server). Stopping the server wakes it.
    - ``status=429, headers={"Retry-After": "120"}``: any status, extra response headers.
    - ``redirect_to="/other"`` (or an absolute URL): answer 302 to it instead of the body.
    - ``gzip=True``: gzip the body when the client accepts it (Content-Encoding: gzip).
    - ``trickle=s``: send headers at once, then the body in 16 pieces with `s` seconds before
      each (a server slow in the body, where no single read is slow).

``FeedServer.set_huge(path, size, **behaviours)``
    Serve `size` bytes of filler XML (e.g. 11 MiB), written in chunks, for body-cap tests.
``FeedServer.requests(path) -> list[SeenRequest]`` / ``FeedServer.count(path) -> int``
    Requests seen for `path` (method, path, headers with lower-case names), oldest first.
``FeedServer.clear(path=None)``
    Forget content and recorded requests (of one path or all).

``FeedServer(tls=server_ssl_context)`` serves HTTPS instead (the TLS handshake runs on accept).

Query strings and fragments are ignored when matching paths and recording requests ("/a.xml?x"
is "/a.xml"). Unknown paths answer 404. The server runs in daemon threads with short socket timeouts, and
``stop()`` does not wait for slow handlers, so teardown never hangs.
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import pytest

# Exactly the server's address: tests that need a refused loopback address use 127.0.0.2.
ALLOW_LOOPBACK = "127.0.0.1/32"
DEFAULT_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
_CHUNK = 64 * 1024
# Long enough for any test request, short enough that an idle keep-alive thread dies quickly.
_SOCKET_TIMEOUT = 5.0
_TRICKLE_PIECES = 16


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    # The client's (address, port): requests with the same one came over the same connection.
    client: tuple[str, int] = ("", 0)


@dataclass(slots=True)
class _Route:
    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = False
    last_modified: bool = False
    delay: float = 0.0
    redirect_to: str | None = None
    gzip: bool = False
    trickle: float = 0.0
    modified_at: float = 0.0  # unix seconds, whole
    _gzipped: bytes | None = None

    @property
    def etag_value(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip_module.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


class FeedServer:
    """A threaded HTTP server on 127.0.0.1 serving configurable feed documents."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._routes: dict[str, _Route] = {}
        self._seen: dict[str, list[SeenRequest]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FeedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _QuietServer((self._host, self._port), _make_handler(self))
        # Daemon handler threads, and no joining them on close: a handler sleeping in `delay` or
        # stuck on a half-read client must never hold up teardown.
        httpd.daemon_threads = True
        httpd.block_on_close = False
        if self._tls is not None:
            httpd.socket = self._tls.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"feedserver:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers waiting out a `delay`
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    def url(self, path: str) -> str:
        return self.base_url + _norm(path)

    def set(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        etag: bool = False,
        last_modified: bool = False,
        delay: float = 0.0,
        redirect_to: str | None = None,
        gzip: bool = False,
        trickle: float = 0.0,
    ) -> None:
        """Serve `body` at `path` with the given behaviours (see the module docstring)."""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        path = _norm(path)
        with self._lock:
            old = self._routes.get(path)
            modified_at = float(int(time.time()))
            if old is not None:
                # Same content keeps its date; new content always gets a strictly later one,
                # since HTTP dates only have whole seconds.
                if old.body == data:
                    modified_at = old.modified_at
                else:
                    modified_at = max(modified_at, old.modified_at + 1)
            self._routes[path] = _Route(
                body=data,
                content_type=content_type,
                status=status,
                headers=dict(headers or {}),
                etag=etag,
                last_modified=last_modified,
                delay=delay,
                redirect_to=redirect_to,
                gzip=gzip,
                trickle=trickle,
                modified_at=modified_at,
            )

    def set_huge(self, path: str, size: int, **behaviours: object) -> None:
        """Serve `size` bytes of (valid-looking, highly compressible) RSS filler at `path`."""
        head = b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n'
        pad = b"<!-- padding padding padding padding padding padding padding -->\n"
        count = max(0, size - len(head)) // len(pad) + 1
        body = (head + pad * count)[:size]
        self.set(path, body, **behaviours)  # type: ignore[arg-type]

    def clear(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._routes.clear()
                self._seen.clear()
            else:
                self._routes.pop(_norm(path), None)
                self._seen.pop(_norm(path), None)

    # -- observation -------------------------------------------------------------------------

    def requests(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen.get(_norm(path), ()))

    def count(self, path: str) -> int:
        with self._lock:
            return len(self._seen.get(_norm(path), ()))

    # -- used by the handler -----------------------------------------------------------------

    def _record(self, request: SeenRequest) -> _Route | None:
        with self._lock:
            self._seen.setdefault(request.path, []).append(request)
            return self._routes.get(request.path)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False if the server is stopping meanwhile."""
        return not self._stopping.wait(seconds)


class _QuietServer(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: fifty pollers connecting at once overflowed it, and a
    # connection whose handshake the kernel then dropped waited out SYN-ACK retransmits (seconds).
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-response is routine here (body caps, timeouts); anything else
        # would show up as a failed assertion in the test that provoked it.
        pass


def _norm(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    return path if path.startswith("/") else "/" + path


def _make_handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        feed_server = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    feed_server: FeedServer
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers; httpx reuses connections
    timeout = _SOCKET_TIMEOUT
    server_version = "feedserver/1"

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests read `requests()`, not stderr

    def _serve(self, *, send_body: bool) -> None:
        server = self.feed_server
        path = _norm(self.path)
        seen = SeenRequest(
            method=self.command,
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            client=(str(self.client_address[0]), int(self.client_address[1])),
        )
        route = server._record(seen)
        try:
            if route is None:
                self._send_simple(404, b"not found\n", send_body)
                return
            if route.delay > 0 and not server._wait(route.delay):
                self.close_connection = True
                return
            self._answer(server, route, seen, send_body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            # The client gave up (body cap, timeout): that is what many tests provoke.
            self.close_connection = True

    def _answer(
        self, server: FeedServer, route: _Route, seen: SeenRequest, send_body: bool
    ) -> None:
        if route.redirect_to is not None:
            target = route.redirect_to
            location = target if "://" in target else server.url(target)
            self.send_response(302)
            self.send_header("Location", location)
            self._send_extra(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return

        validators: list[tuple[str, str]] = []
        if route.etag:
            validators.append(("ETag", route.etag_value))
        if route.last_modified:
            validators.append(("Last-Modified", formatdate(route.modified_at, usegmt=True)))

        if route.status == 200 and _not_modified(route, seen.headers):
            self.send_response(304)
            for name, value in validators:
                self.send_header(name, value)
            self._send_extra(route)
            self.end_headers()
            return

        body = route.body
        encoded = route.gzip and "gzip" in seen.headers.get("accept-encoding", "")
        if encoded:
            body = route.gzipped()
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoded:
            self.send_header("Content-Encoding", "gzip")
        for name, value in validators:
            self.send_header(name, value)
        self._send_extra(route)
        self.end_headers()
        if not send_body:
            return
        if route.trickle > 0:
            piece = max(1, -(-len(body) // _TRICKLE_PIECES))
            for start in range(0, len(body), piece):
                if not server._wait(route.trickle):
                    self.close_connection = True
                    return
                self.wfile.write(body[start : start + piece])
            return
        for chunk in _chunks(body):
            self.wfile.write(chunk)

    def _send_extra(self, route: _Route) -> None:
        for name, value in route.headers.items():
            self.send_header(name, value)

    def _send_simple(self, status: int, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def _not_modified(route: _Route, headers: Mapping[str, str]) -> bool:
    # RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since when both are sent.
    if_none_match = headers.get("if-none-match")
    if route.etag and if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or route.etag_value in tags
    if_modified_since = headers.get("if-modified-since")
    if route.last_modified and if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return route.modified_at <= since
    return False


def _chunks(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield view[start : start + _CHUNK]


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started `FeedServer` on a free loopback port, stopped after the test."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()
