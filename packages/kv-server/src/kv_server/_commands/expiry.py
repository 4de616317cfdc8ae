"""Expiry commands, and the deadline arithmetic SET, SETEX and GETEX share with them.

Deadlines are absolute Unix times in milliseconds (see :mod:`kv_server._keyspace`);
the range checks are Redis's, which keeps a deadline in a signed 64-bit integer.
"""

from __future__ import annotations

from typing import Any, Final

from kv_protocol.errors import OutOfRangeError
from kv_protocol.values import Key
from kv_server._dispatch import command
from kv_server._keyspace import MISSING, Keyspace
from kv_server._session import Session

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

_OPTION_UNITS: Final = (("EX", 1000, False), ("PX", 1, False), ("EXAT", 1000, True),
                        ("PXAT", 1, True))


def _invalid(command: str) -> OutOfRangeError:
    return OutOfRangeError(f"invalid expire time in '{command}' command")


def to_deadline(keyspace: Keyspace, amount: int, scale: int, absolute: bool, command: str, *,
                positive: bool) -> int:
    """The deadline for ``amount`` seconds (scale 1000) or milliseconds (scale 1).

    SET and its relatives need a positive time; EXPIRE takes any, and one in the
    past deletes the key.
    """
    if positive and amount <= 0:
        raise _invalid(command)
    scaled = amount * scale
    if not INT64_MIN <= scaled <= INT64_MAX:
        raise _invalid(command)
    deadline = scaled if absolute else scaled + keyspace.clock()
    if deadline > INT64_MAX:
        raise _invalid(command)
    return deadline


def deadline_from_options(keyspace: Keyspace, options: dict[str, object], command: str
                          ) -> int | None:
    """The deadline an EX, PX, EXAT or PXAT option asks for, or None."""
    for word, scale, absolute in _OPTION_UNITS:
        amount = options.get(word)
        if amount is not None:
            assert type(amount) is int  # parse_options checked the kind
            return to_deadline(keyspace, amount, scale, absolute, command, positive=True)
    return None


def apply_deadline(keyspace: Keyspace, key: Key, deadline: int) -> None:
    """Give an existing key ``deadline``; one that has passed deletes the key now."""
    if deadline <= keyspace.clock():
        keyspace.delete(key)
    else:
        keyspace.set_deadline(key, deadline)


def _expire(ctx: Session, argv: list[Any], scale: int, absolute: bool) -> int:
    keyspace, key = ctx.keyspace, argv[1]
    deadline = to_deadline(keyspace, argv[2], scale, absolute, argv[0].lower(), positive=False)
    if keyspace.peek(key) is MISSING:
        return 0
    if len(argv) > 3:
        current = keyspace.deadline(key)
        condition = argv[3].upper()
        # No deadline counts as an infinitely late one, as in Redis.
        if ((condition == "NX" and current is not None)
                or (condition == "XX" and current is None)
                or (condition == "GT" and (current is None or deadline <= current))
                or (condition == "LT" and current is not None and deadline >= current)):
            return 0
    apply_deadline(keyspace, key, deadline)
    ctx.log_as = ["PEXPIREAT", key, deadline]  # absolute, so that replay does not extend it
    return 1


@command("EXPIRE")
def expire(ctx: Session, argv: list[Any]) -> int:
    return _expire(ctx, argv, 1000, absolute=False)


@command("PEXPIRE")
def pexpire(ctx: Session, argv: list[Any]) -> int:
    return _expire(ctx, argv, 1, absolute=False)


@command("EXPIREAT")
def expireat(ctx: Session, argv: list[Any]) -> int:
    return _expire(ctx, argv, 1000, absolute=True)


@command("PEXPIREAT")
def pexpireat(ctx: Session, argv: list[Any]) -> int:
    return _expire(ctx, argv, 1, absolute=True)


def _time_left(ctx: Session, key: Key, *, milliseconds: bool, absolute: bool) -> int:
    keyspace = ctx.keyspace
    if keyspace.read(key) is MISSING:
        return -2
    deadline = keyspace.deadline(key)
    if deadline is None:
        return -1
    if absolute:
        return deadline if milliseconds else deadline // 1000
    left = max(deadline - keyspace.clock(), 0)
    return left if milliseconds else (left + 500) // 1000


@command("TTL")
def ttl(ctx: Session, argv: list[Any]) -> int:
    return _time_left(ctx, argv[1], milliseconds=False, absolute=False)


@command("PTTL")
def pttl(ctx: Session, argv: list[Any]) -> int:
    return _time_left(ctx, argv[1], milliseconds=True, absolute=False)


@command("EXPIRETIME")
def expiretime(ctx: Session, argv: list[Any]) -> int:
    return _time_left(ctx, argv[1], milliseconds=False, absolute=True)


@command("PEXPIRETIME")
def pexpiretime(ctx: Session, argv: list[Any]) -> int:
    return _time_left(ctx, argv[1], milliseconds=True, absolute=True)


@command("PERSIST")
def persist(ctx: Session, argv: list[Any]) -> int:
    keyspace, key = ctx.keyspace, argv[1]
    if keyspace.peek(key) is MISSING or keyspace.deadline(key) is None:
        return 0
    keyspace.set_deadline(key, None)
    return 1
