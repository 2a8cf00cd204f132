"""Polite async HTTP fetching of feeds.

One `Fetcher` holds one shared `httpx.AsyncClient` (connection pooling across feeds) and enforces
the limits a poller of untrusted servers needs: a connect timeout, a total deadline for the whole
request including the body, a cap on decoded body bytes, a redirect limit, and conditional
requests (ETag / Last-Modified) so unchanged feeds cost a 304 and no parsing. Every connection,
redirect hops included, passes the outbound address guard (liveupdates/netguard): only public
addresses, plus the networks ops allow (`allow_networks`, the `fetch.allow_networks` setting).

`Fetcher.fetch` never raises for network or HTTP problems: every failure comes back as a
`FetchResult` with status "error" and a human-readable `error`, so the poller can record it and
carry on. `next_fetch_state` (pure) turns a result into what to remember for the next poll.
"""

from __future__ import annotations

import asyncio
import calendar
import email.utils
import errno
import functools
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx

from liveupdates import __version__
from liveupdates.feeds.backoff import MAX_RETRY_AFTER
from liveupdates.models import FetchState
from liveupdates.netguard.policy import AddressPolicy, AddressRefused, IPNetwork
from liveupdates.netguard.transport import Endpoint, endpoint, guarded_client

log = logging.getLogger(__name__)

USER_AGENT = f"liveupdates/{__version__} (+https://github.com/liveupdates/liveupdates)"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_TOTAL_TIMEOUT = 20.0
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
# The backoff's cap on a Retry-After: one limit, whichever end of the pipeline applies it.
MAX_RETRY_AFTER_SECONDS = MAX_RETRY_AFTER
_ALLOWED_SCHEMES = ("http", "https")
_RETRY_AFTER_STATUSES = (429, 503)

FetchStatus = Literal["ok", "not_modified", "error"]


@dataclass(slots=True)
class FetchResult:
    """The outcome of one fetch.

    `etag` / `last_modified` are the validators to remember for the next conditional request:
    the response's on 200, the response's or else the old ones on 304, the old ones on error.
    `body` is only set when status is "ok"; a 304 carries none.
    """

    status: FetchStatus
    url: str
    http_status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    retry_after_seconds: float | None = None
    error: str | None = None
    duration_ms: float = 0.0


class FetchFailed(Exception):
    """Internal: a failure already described in words, turned into an error result by `fetch`."""

    def __init__(self, message: str, *, http_status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.url = url


class Fetcher:
    """Fetches feeds over one shared HTTP client. Use as `async with Fetcher() as f:` or call
    `aclose()` when done."""

    def __init__(
        self,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        user_agent: str = USER_AGENT,
        allow_networks: Iterable[str | IPNetwork] = (),
    ) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.max_body_bytes = max_body_bytes
        self.policy = AddressPolicy.allowing(allow_networks)
        # httpx timeouts apply per operation (each read may wait that long), so the total deadline
        # is enforced separately in `fetch`; these only stop any single step from outliving it.
        self._options: dict[str, Any] = {
            "timeout": httpx.Timeout(total_timeout, connect=min(connect_timeout, total_timeout)),
            "follow_redirects": True,
            "max_redirects": max_redirects,
            "headers": {"User-Agent": user_agent},
        }
        self._client = guarded_client(self.policy, **self._options)
        # Clients for exempt fetches, one per exempt origin: their own connection pools, so a
        # connection opened for the demo feed is never reused for a request that is not exempt.
        self._exempt: dict[Endpoint, httpx.AsyncClient] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in [self._client, *self._exempt.values()]:
            await client.aclose()
        self._exempt.clear()

    async def fetch(
        self, url: str, state: FetchState, *, exempt_origin: str | None = None
    ) -> FetchResult:
        """GET `url` conditionally on `state`'s validators. Never raises for network/HTTP trouble:
        failures come back as a result with status "error" and a readable `error`.

        `exempt_origin`: a base URL ops configured themselves (the service's own, for the demo
        feed's `{self}`), whose host and port skip the address guard in this fetch. Every other
        host, whatever `url` or a redirect names, is still checked.
        """
        started = time.perf_counter()
        try:
            _check_url(url)
            client = self._client if exempt_origin is None else self._exempt_client(exempt_origin)
            async with asyncio.timeout(self.total_timeout):
                result = await self._get(client, url, state)
        except FetchFailed as failure:
            result = _error(url, state, failure.message, failure.http_status, failure.url)
        except AddressRefused as refused:
            result = _error(url, state, str(refused))
        except TimeoutError:
            result = _error(url, state, f"timed out after {self.total_timeout} s")
        except httpx.ConnectTimeout:
            result = _error(url, state, f"connect timed out after {self.connect_timeout} s")
        except httpx.TimeoutException:
            result = _error(url, state, f"timed out after {self.total_timeout} s")
        except httpx.TooManyRedirects:
            result = _error(url, state, "too many redirects")
        except httpx.UnsupportedProtocol as exc:
            # Only reachable through a redirect: the first URL was checked above.
            result = _error(url, state, f"redirected to an unsupported URL ({exc})")
        except httpx.ConnectError as exc:
            result = _error(url, state, _describe_connect_error(exc))
        except httpx.DecodingError as exc:
            result = _error(url, state, f"could not decode response body: {exc}")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            result = _error(
                url, state, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
        except Exception as exc:
            # The poller relies on fetch never raising; an unforeseen library error must become a
            # recorded feed error rather than kill the poll loop. Logged with a traceback to fix it.
            log.exception("unexpected error fetching %s", url)
            result = _error(url, state, f"unexpected error: {type(exc).__name__}: {exc}")
        result.duration_ms = (time.perf_counter() - started) * 1000.0
        return result

    def _exempt_client(self, base_url: str) -> httpx.AsyncClient:
        origin = endpoint(base_url)
        if origin not in self._exempt:
            self._exempt[origin] = guarded_client(self.policy, exempt={origin}, **self._options)
        return self._exempt[origin]

    async def _get(self, client: httpx.AsyncClient, url: str, state: FetchState) -> FetchResult:
        request_headers: dict[str, str] = {}
        if state.etag:
            request_headers["If-None-Match"] = state.etag
        if state.last_modified:
            request_headers["If-Modified-Since"] = state.last_modified

        async with client.stream("GET", url, headers=request_headers) as response:
            final_url = str(response.url)
            headers = {k.lower(): v for k, v in response.headers.items()}
            status = response.status_code

            if status == 304:
                # A 304 has no body (h11 reads none whatever the server sends), but the
                # response must be read to its end for the connection to go back to the pool:
                # closed unread, it is dropped and the next poll pays a new handshake.
                await response.aread()
                return FetchResult(
                    status="not_modified",
                    url=final_url,
                    http_status=status,
                    headers=headers,
                    etag=headers.get("etag") or state.etag,
                    last_modified=headers.get("last-modified") or state.last_modified,
                )

            if not 200 <= status < 300:
                retry_after = None
                if status in _RETRY_AFTER_STATUSES and "retry-after" in headers:
                    retry_after = parse_retry_after(headers["retry-after"], now=time.time())
                return FetchResult(
                    status="error",
                    url=final_url,
                    http_status=status,
                    headers=headers,
                    etag=state.etag,
                    last_modified=state.last_modified,
                    retry_after_seconds=retry_after,
                    error=f"HTTP {status}",
                )

            body = await self._read_capped(response, headers)
            return FetchResult(
                status="ok",
                url=final_url,
                http_status=status,
                body=body,
                headers=headers,
                etag=headers.get("etag"),
                last_modified=headers.get("last-modified"),
            )

    async def _read_capped(self, response: httpx.Response, headers: dict[str, str]) -> bytes:
        cap = self.max_body_bytes
        too_big = f"body exceeds {cap} bytes"
        # Without content coding the declared length is the decoded length: refuse before reading.
        if headers.get("content-encoding", "identity").lower() == "identity":
            declared = _int_or_none(headers.get("content-length"))
            if declared is not None and declared > cap:
                raise FetchFailed(too_big, http_status=response.status_code, url=str(response.url))

        chunks: list[bytes] = []
        size = 0
        # aiter_bytes yields decoded bytes, so the cap also stops gzip bombs.
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise FetchFailed(too_big, http_status=response.status_code, url=str(response.url))
            chunks.append(chunk)
        return b"".join(chunks)


def next_fetch_state(old: FetchState, result: FetchResult, *, now: float) -> FetchState:
    """What to remember after `result`, given the state the fetch was made with. Pure.

    `now` is unix time, used to turn a Retry-After delay into `not_before`.
    """
    failed = result.status == "error"
    not_before = None
    if result.retry_after_seconds is not None:
        not_before = now + result.retry_after_seconds
    return FetchState(
        etag=old.etag if failed else result.etag,
        last_modified=old.last_modified if failed else result.last_modified,
        not_before=not_before,
        consecutive_errors=old.consecutive_errors + 1 if failed else 0,
    )


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), clamped to
    [0, MAX_RETRY_AFTER_SECONDS]. None if the value is unreadable. Pure: `now` is unix time."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            parsed = email.utils.parsedate_tz(value)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed is None:
            return None
        # HTTP dates are always GMT; a date without a zone is read the same way.
        offset = parsed[9] or 0
        seconds = calendar.timegm(parsed[:9]) - offset - now
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


# A poller asks the same few thousand URLs again and again; a URL that passed once passes again
# (the check reads nothing but the string), so only its first poll pays for parsing it here.
# Refused URLs raise, and are not remembered.
@functools.lru_cache(maxsize=4096)
def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchFailed(f"invalid URL: {exc}") from None
    if parsed.scheme not in _ALLOWED_SCHEMES:
        scheme = parsed.scheme or "(none)"
        raise FetchFailed(f"unsupported URL scheme {scheme!r}: only http and https are fetched")
    if not parsed.host:
        raise FetchFailed("invalid URL: no host")


def _error(
    url: str,
    state: FetchState,
    message: str,
    http_status: int | None = None,
    final_url: str | None = None,
) -> FetchResult:
    return FetchResult(
        status="error",
        url=final_url or url,
        http_status=http_status,
        etag=state.etag,
        last_modified=state.last_modified,
        error=message,
    )


def _describe_connect_error(exc: httpx.ConnectError) -> str:
    # httpx wraps the OS error; walk the chain so ops see "connection refused", not a repr.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return f"connection failed: {text}" if text else "connection failed"


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
