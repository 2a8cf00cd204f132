"""Reading request parameters (query strings, path segments) into the models. Pure.

Query strings are text: a field typed `int` is read with validate.parse_int (ASCII digits only,
bounded before conversion, surrounding spaces allowed) using the bounds the model declares, a `str`
field with validate.check_text; then msgspec checks the rest of the model's constraints (lengths,
patterns). Every refusal is an `InvalidInput` whose message names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

from liveupdates.validate import MAX_INT, InvalidInput, check_text, parse_int

T = TypeVar("T", bound=msgspec.Struct)
U = TypeVar("U")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
LONE_SURROGATES = "must not contain lone surrogates"


def _scalar(t: inspect.Type) -> inspect.Type:
    """The non-None member of `X | None` (and X itself), without its Meta annotations."""
    if isinstance(t, inspect.Metadata):
        return _scalar(t.type)
    if isinstance(t, inspect.UnionType):
        members = [m for m in t.types if not isinstance(m, inspect.NoneType)]
        if len(members) == 1:
            return _scalar(members[0])
    return t


@dataclass(frozen=True, slots=True)
class _Param:
    name: str  # the field's name, for messages
    key: str  # the parameter's name on the wire
    integer: bool
    low: int
    high: int
    max_length: int | None


@cache
def _plan(model: type[msgspec.Struct]) -> tuple[_Param, ...]:
    """What to check for each field of `model`, read once from its type annotations."""
    info = inspect.type_info(model)
    assert isinstance(info, inspect.StructType)
    plan = []
    for field in info.fields:
        kind = _scalar(field.type)
        low, high = 0, MAX_INT
        if isinstance(kind, inspect.IntType):
            low = kind.ge if kind.ge is not None else low
            high = kind.le if kind.le is not None else high
        plan.append(
            _Param(
                name=field.name,
                key=field.encode_name,
                integer=isinstance(kind, inspect.IntType),
                low=low,
                high=high,
                max_length=getattr(kind, "max_length", None),
            )
        )
    return tuple(plan)


def parse(model: type[T], params: Mapping[str, str], *, messages: Mapping[str, str] = {}) -> T:
    """`params` as a `model`; an empty value counts as absent (the default applies).

    `messages` may give a field's own refusal text (the protocol's wording for `since`, say).
    """
    values: dict[str, object] = {}
    for param in _plan(model):
        raw = params.get(param.key)
        if raw is None or raw == "":
            continue
        try:
            if param.integer:
                values[param.key] = parse_int(raw, param.name, low=param.low, high=param.high)
            else:
                values[param.key] = check_text(raw, param.name, max_length=param.max_length)
        except InvalidInput:
            if param.name in messages:
                raise InvalidInput(messages[param.name]) from None
            raise
    try:
        return msgspec.convert(values, model)
    except msgspec.ValidationError as exc:
        text = field_message(exc)
        field = text.partition(":")[0]
        raise InvalidInput(messages.get(field, text)) from None


def convert_body(body: Any, model: type[U]) -> U:
    """`body` (parsed JSON) as `model`: msgspec.ValidationError when a value does not fit it,
    InvalidInput when an object key is a lone surrogate (JSON allows the escape; msgspec cannot
    look such a key up, and would raise UnicodeEncodeError)."""
    try:
        return msgspec.convert(body, model)
    except UnicodeEncodeError:
        raise InvalidInput(f"body {LONE_SURROGATES}") from None


def validation_field(exc: msgspec.ValidationError) -> tuple[str | None, str]:
    """(the field msgspec's error is about, as "a.b", or None for the whole value; what is wrong).

    msgspec says "Expected `str` matching regex '...' - at `$.a.b`" and "Object missing required
    field `c` - at `$.a`": ("a.b", "expected `str` matching regex '...'") and ("a.c", "is required").
    """
    text = str(exc)
    head, sep, where = text.rpartition(" - at `$")
    if not sep or not head:
        head, where = text, ""
    path = where.rstrip("`").lstrip(".")
    missing = _MISSING.fullmatch(head)
    if missing:
        return (f"{path}.{missing.group(1)}" if path else missing.group(1)), "is required"
    return (path or None), head[:1].lower() + head[1:]


def field_message(exc: msgspec.ValidationError) -> str:
    """msgspec says "Expected `str` matching regex '...' - at `$.cursor`": the field first."""
    field, wording = validation_field(exc)
    if field is None:
        return str(exc)
    if wording == "is required":
        return f"{field} is required"
    return f"{field}: {wording}"
