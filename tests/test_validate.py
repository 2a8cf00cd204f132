"""The edge checks (liveupdates/validate.py) and the pure limit counters."""

from __future__ import annotations

import logging
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveupdates.hub.limits import ConnectionLimits, Refused, RequestRate
from liveupdates.hub.logfilter import ClientMistakeFilter
from liveupdates.ops.auth import FailureThrottle
from liveupdates.validate import (
    MAX_INT,
    InvalidInput,
    check_text,
    parse_int,
    parse_number,
    plausible_id,
)

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)


@given(st.one_of(ANY_TEXT, st.integers(), st.floats(), st.booleans(), st.none()))
def test_parse_int_accepts_exactly_bounded_ascii_integers(value: object) -> None:
    try:
        result = parse_int(value, "since")
    except InvalidInput as exc:
        assert "since" in str(exc)
        return
    assert 0 <= result <= MAX_INT
    if isinstance(value, str):
        assert value.strip(" \t").isascii() and value.strip(" \t").isdigit()
    else:
        assert type(value) is int


@pytest.mark.parametrize(
    "value",
    ["²", "٣", "\uff11", "", " ", "-1", "1.0", "1e3", "9" * 5000, str(MAX_INT + 1), True, 1.0],
)
def test_parse_int_refuses(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_int(value, "since")


def test_parse_int_bounds_and_whitespace() -> None:
    assert parse_int(" 42\t", "limit", low=1, high=100) == 42
    assert parse_int(str(MAX_INT), "since") == MAX_INT
    with pytest.raises(InvalidInput, match="from 1 to 100"):
        parse_int("0", "limit", low=1, high=100)


@pytest.mark.parametrize("value", [10**401, 1e400, float("nan"), float("inf"), -1e13, "5", None])
def test_parse_number_refuses_huge_and_non_numbers(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_number(value, "interval_seconds")


def test_text_checks() -> None:
    assert check_text("Harbour news", "title") == "Harbour news"
    for bad in ("\ud800", "a\udfffb"):
        with pytest.raises(InvalidInput, match="surrogate"):
            check_text(bad, "title")
    with pytest.raises(InvalidInput, match="at most 3"):
        check_text("abcd", "id", max_length=3)
    assert plausible_id("k3v7q2mxa4pt6hne")
    assert not plausible_id("x" * 257) and not plausible_id("") and not plausible_id("\ud800")


def test_connection_limits_total_and_per_address() -> None:
    limits = ConnectionLimits(total=3, per_address=2)
    limits.acquire("10.0.0.1")
    limits.acquire("10.0.0.1")
    with pytest.raises(Refused, match="your address"):
        limits.acquire("10.0.0.1")
    limits.acquire("10.0.0.2")
    with pytest.raises(Refused, match="connection limit") as refused:
        limits.acquire("10.0.0.3")
    assert refused.value.retry_after == 10
    limits.release("10.0.0.1")
    limits.acquire("10.0.0.3")
    assert (limits.open, limits.from_address("10.0.0.1")) == (3, 1)


def test_request_rate_refills_and_forgets_idle_addresses() -> None:
    rate = RequestRate(2.0, max_tracked=2)
    for _ in range(4):
        rate.check("a", now=0.0)
    with pytest.raises(Refused) as refused:
        rate.check("a", now=0.0)
    assert refused.value.retry_after == 1
    rate.check("a", now=0.5)  # one request back after half a second
    rate.check("b", now=0.5)
    rate.check("c", now=100.0)  # both others are full again by then: forgotten
    assert rate.tracked() == 1


def test_failure_throttle_opens_after_the_window() -> None:
    throttle = FailureThrottle(limit=3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert throttle.retry_after("a", t) is None
        throttle.failed("a", t)
    assert throttle.retry_after("a", 2.0) == 58
    assert throttle.retry_after("b", 2.0) is None
    assert throttle.retry_after("a", 60.5) is None  # the first failure left the window


def test_client_mistake_filter_keeps_one_line_a_minute() -> None:
    now = [0.0]
    log_filter = ClientMistakeFilter(clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        try:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        except UnicodeDecodeError:
            exc_info = sys.exc_info()
        return logging.LogRecord("uvicorn.error", logging.ERROR, "", 0, msg, (), exc_info)

    first = record("Invalid UTF-8 sequence received from client.")
    assert log_filter.filter(first)
    assert (first.levelno, first.exc_info) == (logging.WARNING, None)
    assert not log_filter.filter(record("Invalid UTF-8 sequence received from client."))
    now[0] = 61.0
    again = record("Invalid UTF-8 sequence received from client.")
    assert log_filter.filter(again) and "1 more" in again.getMessage()
    other = record("Exception in ASGI application\n")
    assert log_filter.filter(other) and other.exc_info is not None  # bugs keep their traceback
