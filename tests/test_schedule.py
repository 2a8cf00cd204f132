"""The adaptive poll rule (liveupdates/feeds/schedule.py): pure, so tested without any clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveupdates.feeds.schedule import (
    adaptive_bounds,
    apply_hint,
    plan_next_poll,
    response_hint,
)

LIMITS = {"min_interval": 2.0, "max_interval": 86400.0, "max_backoff": 3600.0}


def plan(**kwargs: Any) -> Any:
    args = {"adaptive": True, "pace": None, "events": 0, "errors": 0, **LIMITS}
    args.update(kwargs)
    return plan_next_poll(**args)


def run(interval: float, events_per_poll: list[int], **kwargs: Any) -> list[float]:
    """Delays over a sequence of successful polls, carrying the pace like the scheduler does."""
    pace, delays = None, []
    for events in events_per_poll:
        p = plan(interval=interval, pace=pace, events=events, **kwargs)
        pace = p.pace
        delays.append(p.delay)
    return delays


def test_bounds_are_a_quarter_to_four_times_the_interval_within_the_settings() -> None:
    b = adaptive_bounds(60, 2, 86400)
    assert (b.fastest, b.slowest) == (15, 240)
    b = adaptive_bounds(4, 2, 10)
    assert (b.fastest, b.slowest) == (2, 10)
    # An interval at the very edge of the settings never leaves them.
    b = adaptive_bounds(2, 2, 86400)
    assert (b.fastest, b.slowest) == (2, 8)


def test_changes_speed_up_to_a_quarter_of_the_interval() -> None:
    assert run(60, [1, 1, 1, 1]) == [30, 15, 15, 15]


def test_quiet_polls_ease_back_to_the_interval_then_to_four_times_it() -> None:
    delays = run(60, [1, 1] + [0] * 20)
    assert delays[:2] == [30, 15]
    quiet = delays[2:]
    assert quiet == sorted(quiet)  # never faster while quiet
    assert quiet[-1] == 240
    assert 6 <= quiet.index(next(d for d in quiet if d >= 60)) <= 7  # ~6 polls back to interval


def test_a_change_after_a_long_quiet_goes_straight_below_the_interval() -> None:
    delays = run(60, [0] * 20 + [3])
    assert delays[-2] == 240
    assert delays[-1] == 30


def test_fixed_feeds_wait_their_interval_and_ignore_hints() -> None:
    for events in (0, 5):
        p = plan(interval=60, adaptive=False, events=events, hint=3600)
        assert p.delay == 60


def test_hints_slow_a_quiet_feed_but_never_lock_out_a_live_one() -> None:
    # Quiet: a 10-minute ttl is honoured up to the slowest pace (4 x interval).
    assert plan(interval=60, events=0, hint=600).delay == 240
    assert plan(interval=60, events=0, hint=100).delay == 100
    # Live: the same hint is capped at the interval.
    assert plan(interval=60, events=2, hint=600).delay == 60
    assert plan(interval=60, events=0, pace=15, hint=600).delay == 60  # still fast: live
    # A hint shorter than the wait never speeds polling up.
    assert plan(interval=60, events=0, hint=5).delay == 75


def test_apply_hint_ignores_nonsense() -> None:
    b = adaptive_bounds(60, 2, 86400)
    assert apply_hint(30, None, live=True, interval=60, bounds=b) == 30
    assert apply_hint(30, float("nan"), live=False, interval=60, bounds=b) == 30
    assert apply_hint(30, float("inf"), live=False, interval=60, bounds=b) == 30


def test_errors_back_off_keep_the_pace_and_cap_retry_after() -> None:
    p = plan(interval=60, pace=15, errors=3, rng=lambda: 1.0)
    assert p.delay == 480  # 60 * 2**3, top of the jitter range
    assert p.pace == 15  # a recovered feed resumes where it was
    p = plan(interval=60, errors=1, retry_after=999_999, rng=lambda: 0.0)
    assert p.delay == 3600  # Retry-After honoured, but not beyond max_backoff
    p = plan(interval=60, errors=1, retry_after=300, rng=lambda: 0.0)
    assert p.delay == 300


def test_success_after_errors_resets_to_the_pace() -> None:
    assert plan(interval=60, pace=15, errors=0, events=0).delay == 18.75


@given(
    interval=st.floats(2, 86400),
    events=st.lists(st.integers(0, 3), min_size=1, max_size=30),
    hint=st.one_of(st.none(), st.floats(0, 10**7)),
    jitter=st.floats(0, 0.5),
    r=st.floats(0, 1),
)
def test_every_wait_stays_within_the_feeds_bounds(
    interval: float, events: list[int], hint: float | None, jitter: float, r: float
) -> None:
    b = adaptive_bounds(interval, 2, 86400)
    pace = None
    for n in events:
        p = plan(interval=interval, pace=pace, events=n, hint=hint, jitter=jitter, rng=lambda: r)
        pace = p.pace
        assert b.fastest <= p.pace <= b.slowest
        assert 2 <= p.delay <= b.slowest * (1 + jitter) + 1e-6
        if n:
            # A live story is never held back longer than the interval (plus jitter).
            assert p.delay <= interval * (1 + jitter) + 1e-6


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, None, None),
        ({"Cache-Control": "public, max-age=300"}, None, 300),
        ({"cache-control": "max-age=300, no-cache"}, None, None),
        ({"Cache-Control": "no-store"}, b"<rss><channel><ttl>5</ttl></channel></rss>", 300),
        ({}, b"<rss><channel><ttl> 15 </ttl><item/></channel></rss>", 900),
        ({"Cache-Control": "max-age=60"}, b"<rss><channel><ttl>2</ttl></channel></rss>", 120),
        ({"Cache-Control": "max-age=0"}, None, None),
        ({"Cache-Control": "s-maxage=600"}, None, None),
    ],
)
def test_response_hint(headers: dict[str, str], body: bytes | None, expected: float | None) -> None:
    assert response_hint(headers, body) == expected
