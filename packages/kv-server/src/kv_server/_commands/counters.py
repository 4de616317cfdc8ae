"""Counters: INCR and its relatives, on string keys holding numbers.

Values are typed, so a counter is an integer (or, for INCRBYFLOAT, a float), never
text of digits. Integers stay in Redis's signed 64-bit range: a counter that
would leave it is refused rather than quietly turned into a bignum, so that
clients in any language can read it back.
"""

from __future__ import annotations

import math
from typing import Any, Final

from kv_protocol.errors import NotFloatError, NotIntegerError, OutOfRangeError
from kv_server._dispatch import command
from kv_server._keyspace import CONTAINERS, MISSING, wrong_type
from kv_server._session import Session

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def _in_range(number: int) -> bool:
    return INT64_MIN <= number <= INT64_MAX


def add_integer(current: object, increment: int) -> int:
    """``current + increment`` with Redis's checks; MISSING counts as 0."""
    if not _in_range(increment):
        raise NotIntegerError("value is not an integer or out of range")
    if current is MISSING:
        current = 0
    elif type(current) is not int or not _in_range(current):
        if type(current) in CONTAINERS:
            raise wrong_type()
        raise NotIntegerError("value is not an integer or out of range")
    result = current + increment
    if not _in_range(result):
        raise OutOfRangeError("increment or decrement would overflow")
    return result


def add_float(current: object, increment: int | float) -> float:
    """``current + increment`` as a float; MISSING counts as 0."""
    if current is MISSING:
        current = 0
    elif type(current) is not int and type(current) is not float:
        if type(current) in CONTAINERS:
            raise wrong_type()
        raise NotFloatError("value is not a valid float")
    try:
        result = float(current) + float(increment)
    except OverflowError:  # an integer too large for a float
        raise NotFloatError("value is not a valid float") from None
    if math.isnan(result) or math.isinf(result):
        raise OutOfRangeError("increment would produce NaN or Infinity")
    return result


def _incr_by(ctx: Session, key: Any, increment: int) -> int:
    keyspace = ctx.keyspace
    result = add_integer(keyspace.peek(key), increment)
    keyspace.replace(key, result)
    return result


@command("INCR")
def incr(ctx: Session, argv: list[Any]) -> int:
    return _incr_by(ctx, argv[1], 1)


@command("DECR")
def decr(ctx: Session, argv: list[Any]) -> int:
    return _incr_by(ctx, argv[1], -1)


@command("INCRBY")
def incrby(ctx: Session, argv: list[Any]) -> int:
    return _incr_by(ctx, argv[1], argv[2])


@command("DECRBY")
def decrby(ctx: Session, argv: list[Any]) -> int:
    if not _in_range(argv[2]):
        raise NotIntegerError("value is not an integer or out of range")
    if argv[2] == INT64_MIN:  # its negation does not fit, as Redis says
        raise OutOfRangeError("decrement would overflow")
    return _incr_by(ctx, argv[1], -argv[2])


@command("INCRBYFLOAT")
def incrbyfloat(ctx: Session, argv: list[Any]) -> float:
    keyspace, key = ctx.keyspace, argv[1]
    result = add_float(keyspace.peek(key), argv[2])
    keyspace.replace(key, result)
    return result
