"""Hash commands: a map of field -> value under one key.

Fields are text or bytes (distinct, as keys are); values keep their types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kv_protocol.errors import NotIntegerError
from kv_server._commands.counters import INT64_MAX, INT64_MIN, add_float, add_integer
from kv_server._commands.strings import byte_length, text_or_bytes
from kv_server._dispatch import command
from kv_server._keyspace import MISSING, KvHash
from kv_server._session import Session


def _writable(ctx: Session, key: Any) -> KvHash:
    """The hash at ``key``, created empty (and filled next) when missing."""
    fields: KvHash | None = ctx.keyspace.peek_as(key, KvHash)
    if fields is None:
        fields = KvHash()
        ctx.keyspace.add(key, fields)
    return fields


@command("HSET")
def hset(ctx: Session, argv: list[Any]) -> int:
    key = argv[1]
    fields = _writable(ctx, key)
    before = len(fields)
    for i in range(2, len(argv), 2):
        fields[argv[i]] = argv[i + 1]
    ctx.keyspace.changed(key, fields)
    return len(fields) - before


@command("HSETNX")
def hsetnx(ctx: Session, argv: list[Any]) -> int:
    key, field = argv[1], argv[2]
    fields = _writable(ctx, key)
    if field in fields:
        return 0
    fields[field] = argv[3]
    ctx.keyspace.changed(key, fields)
    return 1


def _read(ctx: Session, key: Any) -> KvHash | None:
    fields: KvHash | None = ctx.keyspace.read_as(key, KvHash)
    return fields


@command("HGET")
def hget(ctx: Session, argv: list[Any]) -> object:
    fields = _read(ctx, argv[1])
    return None if fields is None else fields.get(argv[2])


@command("HMGET")
def hmget(ctx: Session, argv: list[Any]) -> list[object]:
    fields = _read(ctx, argv[1])
    if fields is None:
        return [None] * (len(argv) - 2)
    return [fields.get(field) for field in argv[2:]]


@command("HDEL")
def hdel(ctx: Session, argv: list[Any]) -> int:
    key = argv[1]
    fields: KvHash | None = ctx.keyspace.peek_as(key, KvHash)
    if fields is None:
        return 0
    removed = sum(fields.pop(field, MISSING) is not MISSING for field in argv[2:])
    if removed:
        ctx.keyspace.changed(key, fields)
    return removed


@command("HEXISTS")
def hexists(ctx: Session, argv: list[Any]) -> int:
    fields = _read(ctx, argv[1])
    return int(fields is not None and argv[2] in fields)


@command("HLEN")
def hlen(ctx: Session, argv: list[Any]) -> int:
    fields = _read(ctx, argv[1])
    return 0 if fields is None else len(fields)


@command("HKEYS")
def hkeys(ctx: Session, argv: list[Any]) -> list[object]:
    fields = _read(ctx, argv[1])
    return [] if fields is None else list(fields)


@command("HVALS")
def hvals(ctx: Session, argv: list[Any]) -> list[object]:
    fields = _read(ctx, argv[1])
    return [] if fields is None else list(fields.values())


@command("HGETALL")
def hgetall(ctx: Session, argv: list[Any]) -> dict[Any, Any]:
    fields = _read(ctx, argv[1])
    return {} if fields is None else dict(fields)


@command("HSTRLEN")
def hstrlen(ctx: Session, argv: list[Any]) -> int:
    fields = _read(ctx, argv[1])
    value = MISSING if fields is None else fields.get(argv[2], MISSING)
    return 0 if value is MISSING else byte_length(text_or_bytes("HSTRLEN", value))


def _add_to_field(ctx: Session, argv: list[Any], add: Callable[[object, Any], Any]) -> Any:
    key, field = argv[1], argv[2]
    fields: KvHash | None = ctx.keyspace.peek_as(key, KvHash)
    result = add(MISSING if fields is None else fields.get(field, MISSING), argv[3])
    fields = _writable(ctx, key)
    fields[field] = result
    ctx.keyspace.changed(key, fields)
    return result


@command("HINCRBY")
def hincrby(ctx: Session, argv: list[Any]) -> int:
    # Redis checks the increment before the key: NOTINTEGER wins over WRONGTYPE.
    if not INT64_MIN <= argv[3] <= INT64_MAX:
        raise NotIntegerError("value is not an integer or out of range")
    result: int = _add_to_field(ctx, argv, add_integer)
    return result


@command("HINCRBYFLOAT")
def hincrbyfloat(ctx: Session, argv: list[Any]) -> float:
    result: float = _add_to_field(ctx, argv, add_float)
    return result


@command("HFIND")
def hfind(ctx: Session, argv: list[Any]) -> list[object]:
    fields = _read(ctx, argv[1])
    if fields is None:
        return []
    part = argv[2]
    part_text = part if type(part) is str else None
    part_bytes = part.encode("utf-8") if type(part) is str else part
    # UTF-8 is self-synchronising: a text contains another exactly when its encoding
    # contains the other's, so text against text needs no encoding.
    return [field for field in fields
            if (part_text in field if part_text is not None and type(field) is str
                else part_bytes in (field.encode("utf-8") if type(field) is str else field))]
