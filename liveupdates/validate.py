"""Checking what clients send, at the edge, before it reaches the store. Pure: no I/O.

Numbers are ASCII decimal and bounded: `str.isdigit` accepts "²" and "٣" that `int()` then refuses
or reads differently, and a number past 64 bits overflows SQLite. Strings must be encodable as
UTF-8: JSON may carry lone surrogates ("\\udfff") that every encoder downstream refuses.
Every check raises `InvalidInput` with a message naming the field; callers turn it into a 400 or
a `bad_request` error frame.
"""

from __future__ import annotations

import math

# The largest integer any store column or log position holds (SQLite INTEGER is signed 64-bit).
MAX_INT = 2**63 - 1
# Path ids (story, feed) longer than this cannot exist: answered 404 without asking the store.
MAX_ID_LENGTH = 256
# Largest magnitude accepted for a JSON number such as interval_seconds (about 31,000 years).
MAX_NUMBER = 1e12


class InvalidInput(ValueError):
    """A value from a client that is not acceptable; the message names the field."""


def valid_text(value: str) -> bool:
    """Whether `value` is encodable as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: object, name: str, *, max_length: int | None = None) -> str:
    """A string without lone surrogates and at most `max_length` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{name} must be at most {max_length} characters")
    if not valid_text(value):
        raise InvalidInput(f"{name} must be valid Unicode text (no lone surrogates)")
    return value


def is_decimal(text: str) -> bool:
    """ASCII digits only ("²" and "٣" are not), at least one."""
    return text.isascii() and text.isdigit()


def parse_int(
    value: object, name: str, *, low: int = 0, high: int = MAX_INT, strings: bool = True
) -> int:
    """An integer in [low, high]: a JSON integer, or (with `strings`) its ASCII decimal text.

    Booleans and floats are refused; digit strings longer than `high` can be are refused before
    conversion, so a 5,000-digit number costs nothing.
    """
    if isinstance(value, str) and strings:
        text = value.strip(" \t")
        if not is_decimal(text) or len(text) > len(str(high)):
            raise InvalidInput(_range_message(name, low, high))
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(_range_message(name, low, high))
    return value


def parse_number(value: object, name: str) -> float:
    """A finite JSON number of magnitude at most MAX_NUMBER, as a float (bounds are the caller's)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number")
    if isinstance(value, int) and abs(value) > MAX_NUMBER:
        raise InvalidInput(f"{name} must be a number of at most {MAX_NUMBER:g}")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise InvalidInput(f"{name} must be a finite number of at most {MAX_NUMBER:g}")
    return number


def plausible_id(value: str) -> bool:
    """Whether a path id could name something stored: short enough and valid text."""
    return 0 < len(value) <= MAX_ID_LENGTH and valid_text(value)


def _range_message(name: str, low: int, high: int) -> str:
    if high == MAX_INT:
        return f"{name} must be a whole number >= {low} (ASCII digits)"
    return f"{name} must be a whole number from {low} to {high} (ASCII digits)"
