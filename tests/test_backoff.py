"""Backoff properties: finite, never shorter than the interval or Retry-After, growing, capped."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveupdates.feeds.backoff import (
    DEFAULT_MAX_BACKOFF,
    MAX_RETRY_AFTER,
    jittered,
    next_poll_delay,
)

intervals = st.floats(min_value=0.5, max_value=86400.0)
errors = st.integers(min_value=0, max_value=10_000)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
retry_afters = st.one_of(
    st.none(),
    st.floats(min_value=-10.0, max_value=1e12),
    st.just(math.inf),
    st.just(math.nan),
)


def fixed(value: float):
    return lambda: value


@given(intervals, errors, retry_afters, unit)
def test_always_finite_and_at_least_the_interval(
    interval: float, n: int, retry_after: float | None, r: float
) -> None:
    delay = next_poll_delay(interval, n, retry_after=retry_after, rng=fixed(r))

    assert math.isfinite(delay)
    assert delay >= interval


@given(intervals, errors, st.floats(min_value=0.0, max_value=MAX_RETRY_AFTER), unit)
def test_never_shorter_than_retry_after(
    interval: float, n: int, retry_after: float, r: float
) -> None:
    assert next_poll_delay(interval, n, retry_after=retry_after, rng=fixed(r)) >= retry_after


@given(intervals, errors, unit)
def test_capped(interval: float, n: int, r: float) -> None:
    delay = next_poll_delay(interval, n, rng=fixed(r))

    assert delay <= max(interval, DEFAULT_MAX_BACKOFF)


@given(intervals, st.integers(min_value=0, max_value=200), unit)
def test_grows_with_errors(interval: float, n: int, r: float) -> None:
    # For the same draw of randomness, one more failure never brings the next poll closer.
    assert next_poll_delay(interval, n + 1, rng=fixed(r)) >= next_poll_delay(
        interval, n, rng=fixed(r)
    )


def test_backs_off_for_real_until_the_cap() -> None:
    # Whatever the jitter, n failures wait at least interval * 2**(n-1) until the cap.
    for r in (0.0, 0.5, 0.999):
        delays = [next_poll_delay(60.0, n, rng=fixed(r)) for n in range(8)]
        assert delays[0] == 60.0
        assert 60.0 <= delays[1] <= 120.0
        assert 120.0 <= delays[2] <= 240.0
        assert 240.0 <= delays[3] <= 480.0
        assert delays[7] <= DEFAULT_MAX_BACKOFF
        assert delays[7] >= DEFAULT_MAX_BACKOFF / 2


def test_no_errors_means_the_interval() -> None:
    assert next_poll_delay(60.0, 0, rng=fixed(0.9)) == 60.0


def test_retry_after_applies_without_errors() -> None:
    assert next_poll_delay(60.0, 0, retry_after=120.0) == 120.0


def test_huge_retry_after_is_clamped_to_a_day() -> None:
    assert next_poll_delay(60.0, 1, retry_after=1e12) == MAX_RETRY_AFTER
    assert next_poll_delay(60.0, 1, retry_after=math.inf) == MAX_RETRY_AFTER


def test_interval_longer_than_cap_is_kept() -> None:
    assert next_poll_delay(7200.0, 5, rng=fixed(0.9)) == 7200.0


def test_custom_cap() -> None:
    assert next_poll_delay(10.0, 50, max_backoff=300.0, rng=fixed(0.999)) <= 300.0


def test_misbehaving_rng_cannot_break_bounds() -> None:
    for value in (-5.0, 7.0, math.nan, math.inf):
        delay = next_poll_delay(60.0, 3, rng=fixed(value))
        assert 60.0 <= delay <= 480.0


@pytest.mark.parametrize("interval", [0.0, -1.0, math.inf, math.nan])
def test_nonsense_interval_is_rejected(interval: float) -> None:
    with pytest.raises(ValueError):
        next_poll_delay(interval, 0)


def test_default_rng_draws_vary() -> None:
    draws = {next_poll_delay(60.0, 4) for _ in range(50)}
    assert len(draws) > 1
    assert all(480.0 <= d <= 960.0 for d in draws)


@given(intervals, st.floats(min_value=0.0, max_value=0.5), unit)
def test_jittered_stays_within_fraction(interval: float, fraction: float, r: float) -> None:
    delay = jittered(interval, fraction, rng=fixed(r))

    assert interval * (1 - fraction) - 1e-9 <= delay <= interval * (1 + fraction) + 1e-9
    assert delay > 0


def test_jittered_default_is_ten_percent() -> None:
    assert jittered(100.0, rng=fixed(0.0)) == pytest.approx(90.0)
    assert jittered(100.0, rng=fixed(0.5)) == pytest.approx(100.0)
    assert jittered(100.0, rng=fixed(1.0)) == pytest.approx(110.0)
