"""Prometheus metrics of one process, served at /metrics, and the few numbers the admin page shows.

The metrics live in a registry of our own rather than prometheus-client's global one, so importing
this module twice (tests, several apps in one process) never fails on duplicate names, and /metrics
shows only liveupdates' numbers. Each process (web, worker) counts what it does itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from liveupdates.settings import Settings, SettingsError

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter(
    "liveupdates_polls",
    "Feed polls, by result (ok, not_modified, error).",
    ["result"],
    registry=REGISTRY,
)
POLL_DURATION = Histogram(
    "liveupdates_poll_duration_seconds",
    "Time one poll of one feed took, fetch to stored events.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60),
    registry=REGISTRY,
)
UPDATES_PUBLISHED = Counter(
    "liveupdates_updates_published",
    "Story events (created/updated) stored and handed to the bus.",
    registry=REGISTRY,
)
CONNECTED_CLIENTS = Gauge(
    "liveupdates_connected_clients",
    "Readers connected right now, by transport (ws, sse).",
    ["transport"],
    registry=REGISTRY,
)
MESSAGES_SENT = Counter(
    "liveupdates_messages_sent",
    "Update frames sent to readers, by transport.",
    ["transport"],
    registry=REGISTRY,
)
SLOW_CLIENTS_DROPPED = Counter(
    "liveupdates_slow_clients_dropped",
    "Readers disconnected because their send queue overflowed.",
    registry=REGISTRY,
)
PUBLISH_TO_SEND = Histogram(
    "liveupdates_publish_to_send_seconds",
    "From an update being stored to its frame being handed to a reader's connection.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
WEBSUB_PUSHES = Counter(
    "liveupdates_websub_pushes",
    "WebSub content pushes received, by result (ok, bad_signature, unknown, too_large).",
    ["result"],
    registry=REGISTRY,
)
WEBSUB_SUBSCRIPTIONS = Counter(
    "liveupdates_websub_subscription_events",
    "WebSub subscription events, by event (requested, verified, denied, failed, renewed, "
    "unsubscribe_requested, unsubscribed, lapsed).",
    ["event"],
    registry=REGISTRY,
)
PUSH_NOTIFICATIONS = Counter(
    "liveupdates_push_notifications",
    "Device push notifications handled by this process, by provider and outcome"
    " (sent, failed, removed: the device was gone).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
PUSH_DEVICES = Gauge(
    "liveupdates_push_devices",
    "Registered push devices, by platform (as last read from the store).",
    ["platform"],
    registry=REGISTRY,
)
PUSH_QUEUE_DEPTH = Gauge(
    "liveupdates_push_queue_depth",
    "(device, story) notifications waiting to be sent (as last read from the store).",
    registry=REGISTRY,
)
PUSH_OLDEST_PENDING = Gauge(
    "liveupdates_push_oldest_pending_seconds",
    "How long the most overdue waiting notification has been due (0: none overdue).",
    registry=REGISTRY,
)
PUSH_PROVIDERS = ("webpush", "apns", "fcm")
PUSH_OUTCOMES = ("sent", "failed", "removed")
for _provider in PUSH_PROVIDERS:
    PUSH_DEVICES.labels(_provider)
    for _outcome in PUSH_OUTCOMES:
        PUSH_NOTIFICATIONS.labels(_provider, _outcome)

WEBSUB_PUSH_RESULTS = ("ok", "bad_signature", "unknown", "too_large")
WEBSUB_EVENTS = (
    "requested",
    "verified",
    "denied",
    "failed",
    "renewed",
    "unsubscribe_requested",
    "unsubscribed",
    "lapsed",
)
for _name in WEBSUB_PUSH_RESULTS:
    WEBSUB_PUSHES.labels(_name)
for _name in WEBSUB_EVENTS:
    WEBSUB_SUBSCRIPTIONS.labels(_name)

TRANSPORTS = ("ws", "sse")
for _transport in TRANSPORTS:
    # Export zeros from the start so dashboards and rate() see the series before the first reader.
    CONNECTED_CLIENTS.labels(_transport)
    MESSAGES_SENT.labels(_transport)
for _result in ("ok", "not_modified", "error"):
    POLLS.labels(_result)


class RecentCounts:
    """Counts per minute over the last `minutes` minutes, for "updates pushed lately".

    Prometheus counters only know totals; the admin page wants a short history without a
    Prometheus server, so this keeps a ring of per-minute buckets. Thread-safe: the hub may count
    from any thread.
    """

    def __init__(self, minutes: int = 15) -> None:
        self.minutes = minutes
        self._buckets: dict[int, int] = {}
        self._lock = threading.Lock()

    def add(self, n: int = 1, *, now: float | None = None) -> None:
        minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            self._buckets[minute] = self._buckets.get(minute, 0) + n
            for old in [m for m in self._buckets if m <= minute - self.minutes]:
                del self._buckets[old]

    def series(self, *, now: float | None = None) -> list[dict[str, Any]]:
        """Oldest first, one item per minute, the current (partial) minute last."""
        minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            counts = dict(self._buckets)
        return [
            {
                "minute": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(m * 60)),
                "count": counts.get(m, 0),
            }
            for m in range(minute - self.minutes + 1, minute + 1)
        ]


RECENT_PUBLISHED = RecentCounts()
RECENT_SENT = RecentCounts()


# -- what the pipeline and the hub call --------------------------------------------------------


def observe_poll(result: str, duration_seconds: float) -> None:
    POLLS.labels(result).inc()
    POLL_DURATION.observe(max(0.0, duration_seconds))


def updates_published(n: int = 1) -> None:
    if n > 0:
        UPDATES_PUBLISHED.inc(n)
        RECENT_PUBLISHED.add(n)


def client_connected(transport: str) -> None:
    CONNECTED_CLIENTS.labels(transport).inc()


def client_disconnected(transport: str) -> None:
    CONNECTED_CLIENTS.labels(transport).dec()


def messages_sent(transport: str, n: int = 1) -> None:
    if n > 0:
        MESSAGES_SENT.labels(transport).inc(n)
        RECENT_SENT.add(n)


def publish_to_send(seconds: float) -> None:
    PUBLISH_TO_SEND.observe(max(0.0, seconds))


def frame_sent(event: Mapping[str, Any], ws: int, sse: int) -> None:
    """One update handed to `ws` + `sse` readers: counts them and, once per update, the time since
    the event was made (its `at`, microseconds, set just before it is stored)."""
    if ws:
        messages_sent("ws", ws)
    if sse:
        messages_sent("sse", sse)
    if ws or sse:
        at = event.get("at")
        if isinstance(at, str):
            try:
                made = datetime.fromisoformat(at).timestamp()
            except ValueError:
                return
            publish_to_send(time.time() - made)


def websub_push(result: str) -> None:
    WEBSUB_PUSHES.labels(result).inc()


def websub_event(event: str) -> None:
    WEBSUB_SUBSCRIPTIONS.labels(event).inc()


def slow_client_dropped() -> None:
    SLOW_CLIENTS_DROPPED.inc()


def push_outcome(provider: str, outcome: str, n: int = 1) -> None:
    PUSH_NOTIFICATIONS.labels(provider, outcome).inc(n)


def push_state(devices: Mapping[str, int], depth: int, oldest_pending_seconds: float) -> None:
    for platform in PUSH_PROVIDERS:
        PUSH_DEVICES.labels(platform).set(devices.get(platform, 0))
    PUSH_QUEUE_DEPTH.set(depth)
    PUSH_OLDEST_PENDING.set(oldest_pending_seconds)


# -- reading -----------------------------------------------------------------------------------


def value(name: str, **labels: str) -> float:
    """Current value of one sample (0 when absent), e.g. value("liveupdates_polls_total", result="ok")."""
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def connected_clients() -> int:
    return int(sum(value("liveupdates_connected_clients", transport=t) for t in TRANSPORTS))


def stats() -> dict[str, Any]:
    """The admin page's summary (GET /v1/admin/stats)."""
    return {
        "connected_clients": connected_clients(),
        "connected_by_transport": {
            t: int(value("liveupdates_connected_clients", transport=t)) for t in TRANSPORTS
        },
        "updates_published_total": int(value("liveupdates_updates_published_total")),
        "messages_sent_total": int(
            sum(value("liveupdates_messages_sent_total", transport=t) for t in TRANSPORTS)
        ),
        "slow_clients_dropped_total": int(value("liveupdates_slow_clients_dropped_total")),
        "polls_total": {
            r: int(value("liveupdates_polls_total", result=r))
            for r in ("ok", "not_modified", "error")
        },
        "window_minutes": RECENT_PUBLISHED.minutes,
        "updates_published_per_minute": RECENT_PUBLISHED.series(),
        "messages_sent_per_minute": RECENT_SENT.series(),
    }


async def _metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def metrics_route(path: str = "/metrics") -> Route:
    return Route(path, _metrics, methods=["GET"])


def start_metrics_server(settings: Settings) -> Callable[[], None]:
    """Serve this process's metrics on `metrics_port` (on `hub_host`) from a background thread,
    for processes without an HTTP app of their own (`worker`; later `push`). Returns the function
    that stops it; does nothing when the port is 0. A port that cannot be bound is a start-up
    mistake: SettingsError, one line."""
    if not settings.metrics_port:
        return lambda: None
    try:
        server, thread = start_http_server(
            settings.metrics_port, addr=settings.hub_host, registry=REGISTRY
        )
    except OSError as exc:
        raise SettingsError(
            f"setting metrics_port: cannot listen on {settings.hub_host}:{settings.metrics_port}"
            f" ({exc.strerror or exc})"
        ) from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
