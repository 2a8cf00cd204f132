"""When to (re)subscribe, when a subscription has lapsed, and what ops see. Pure: `now` is given.

- Renewal: an active lease is renewed once a quarter of it is left (at most a day before the
  end), so a hub that is slow or briefly down has most of the lease to answer a renewal; an
  unanswered renewal is sent again after half that margin (at most PENDING_TIMEOUT).
- A pending request the hub has not verified within PENDING_TIMEOUT has failed.
- A failed subscription is tried again after RETRY_FAILED, a denied one after RETRY_DENIED (the
  feed is polled meanwhile), so a hub that was down or said no once is not given up on for good.
- While active (and not lapsed) the feed is polled at `fallback` seconds, never faster than its
  own interval; in every other state it is polled as if it had no hub.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from liveupdates.models import WebSubSubscription

RENEW_FRACTION = 0.25
MAX_RENEW_MARGIN = 86400.0
PENDING_TIMEOUT = 120.0
RETRY_FAILED = 300.0
RETRY_DENIED = 3600.0


def renew_margin(lease_seconds: float) -> float:
    return min(MAX_RENEW_MARGIN, lease_seconds * RENEW_FRACTION)


def lapsed(sub: WebSubSubscription, now: float) -> bool:
    return sub.state == "active" and (sub.expires_at is None or sub.expires_at <= now)


def is_pushing(sub: WebSubSubscription | None, now: float) -> bool:
    """The hub is expected to push this feed right now."""
    return sub is not None and sub.state == "active" and not lapsed(sub, now)


def needs_request(sub: WebSubSubscription | None, now: float) -> bool:
    """Time to (re)send a subscribe request for a feed that has a hub."""
    if sub is None:
        return True
    if sub.state == "active":
        expires = sub.expires_at or 0.0
        margin = renew_margin(sub.lease_seconds or (expires - sub.requested_at))
        # A renewal the hub has not verified yet is asked again only after a pause, not on
        # every check (half the margin, at most PENDING_TIMEOUT): a slow hub is not flooded.
        return now >= expires - margin and now >= sub.requested_at + min(
            PENDING_TIMEOUT, margin / 2
        )
    if sub.state == "failed":
        return now >= sub.requested_at + RETRY_FAILED
    if sub.state == "denied":
        return now >= sub.requested_at + RETRY_DENIED
    return False  # pending: wait for the hub; unsubscribing: leaving


def pending_expired(sub: WebSubSubscription, now: float) -> bool:
    return sub.state in ("pending", "unsubscribing") and now >= sub.requested_at + PENDING_TIMEOUT


def poll_floor(
    sub: WebSubSubscription | None, now: float, *, fallback: float, interval: float
) -> float | None:
    """The shortest wait before the next poll of a pushed feed; None: poll as usual."""
    if not is_pushing(sub, now):
        return None
    return max(fallback, interval)


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def websub_view(
    sub: WebSubSubscription | None, now: float, *, enabled: bool, opted_in: bool
) -> dict[str, Any]:
    """The `websub` object of a feed's health (admin API, page, CLI).

    `state` is off / pending / active / denied / failed; `summary` says it in words ("active
    until ...", "failed: ..."), `reason` why it is not pushed when that is not obvious.
    """
    view: dict[str, Any] = {
        "state": "off",
        "summary": "off",
        "reason": None,
        "hub": None,
        "topic": None,
        "active_until": None,
        "last_push_at": None,
        "pushes": 0,
        "bad_signatures": 0,
    }
    if sub is not None:
        view.update(
            hub=sub.hub,
            topic=sub.topic,
            last_push_at=sub.last_push_at,
            pushes=sub.pushes,
            bad_signatures=sub.bad_signatures,
        )
    if not enabled:
        view["reason"] = "public_url is not set: WebSub is off, the feed is polled"
    elif not opted_in:
        view["reason"] = "websub = false for this feed: it is polled"
    elif sub is None:
        view["reason"] = "no hub advertised (yet): the feed is polled"
    elif lapsed(sub, now):
        view.update(state="failed", reason="lease expired")
    elif sub.state == "unsubscribing":
        view.update(state="off", reason="unsubscribing")
    else:
        view.update(state=sub.state, reason=sub.reason)
        if sub.state == "active":
            view["active_until"] = _iso(sub.expires_at)
    state = view["state"]
    if state == "active":
        view["summary"] = f"active until {view['active_until']}"
    elif state in ("failed", "denied") and view["reason"]:
        view["summary"] = f"{state}: {view['reason']}"
    else:
        view["summary"] = state
    return view
