"""List commands: kv's queues, a deque per key (O(1) pushes and pops at both ends).

Index rules (negative from the tail, clamping, inclusive ranges) are Redis's,
transcribed from its t_list.c. Elements match by :func:`kv_protocol.values.matcher`,
which keeps types apart where Python's ``==`` would not.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from kv_protocol.commands import BY_NAME
from kv_protocol.errors import NoKeyError, OutOfRangeError
from kv_protocol.messages import OK
from kv_protocol.values import Key, matcher
from kv_server._dispatch import command
from kv_server._keyspace import KvList
from kv_server._session import Session

_LPOS_OPTIONS = BY_NAME["LPOS"].parse_options


def _push(ctx: Session, argv: list[Any], *, left: bool, existing_only: bool) -> int:
    keyspace, key = ctx.keyspace, argv[1]
    items: KvList | None = keyspace.peek_as(key, KvList)
    if items is None:
        if existing_only:
            return 0
        items = KvList()
        keyspace.add(key, items)
    if left:
        items.extendleft(argv[2:])
    else:
        items.extend(argv[2:])
    keyspace.changed(key, items)
    return len(items)


@command("LPUSH")
def lpush(ctx: Session, argv: list[Any]) -> int:
    return _push(ctx, argv, left=True, existing_only=False)


@command("RPUSH")
def rpush(ctx: Session, argv: list[Any]) -> int:
    return _push(ctx, argv, left=False, existing_only=False)


@command("LPUSHX")
def lpushx(ctx: Session, argv: list[Any]) -> int:
    return _push(ctx, argv, left=True, existing_only=True)


@command("RPUSHX")
def rpushx(ctx: Session, argv: list[Any]) -> int:
    return _push(ctx, argv, left=False, existing_only=True)


def _pop(ctx: Session, argv: list[Any], *, left: bool) -> object:
    keyspace, key = ctx.keyspace, argv[1]
    count = argv[2] if len(argv) > 2 else None
    if count is not None and count < 0:
        raise OutOfRangeError("value is out of range, must be positive")
    items: KvList | None = keyspace.peek_as(key, KvList)
    if items is None:
        return None
    pop = items.popleft if left else items.pop
    if count is None:
        popped: object = pop()
    else:
        popped = [pop() for _ in range(min(count, len(items)))]
    keyspace.changed(key, items)
    return popped


@command("LPOP")
def lpop(ctx: Session, argv: list[Any]) -> object:
    return _pop(ctx, argv, left=True)


@command("RPOP")
def rpop(ctx: Session, argv: list[Any]) -> object:
    return _pop(ctx, argv, left=False)


@command("LLEN")
def llen(ctx: Session, argv: list[Any]) -> int:
    items: KvList | None = ctx.keyspace.read_as(argv[1], KvList)
    return 0 if items is None else len(items)


@command("LINDEX")
def lindex(ctx: Session, argv: list[Any]) -> object:
    items: KvList | None = ctx.keyspace.read_as(argv[1], KvList)
    if items is None:
        return None
    index = argv[2]
    return items[index] if -len(items) <= index < len(items) else None


def _clamp(start: int, stop: int, size: int) -> tuple[int, int] | None:
    """Redis's range rule: the inclusive (start, stop) within ``size``, or None if empty."""
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = max(start, 0)
    if start > stop or start >= size:
        return None
    return start, min(stop, size - 1)


def _slice(items: KvList, start: int, stop: int) -> list[object]:
    """``items[start:stop + 1]``, walking from the nearer end (a deque has no slicing)."""
    size = len(items)
    if start <= size - 1 - stop:
        return list(islice(items, start, stop + 1))
    tail = list(islice(reversed(items), size - 1 - stop, size - start))
    tail.reverse()
    return tail


@command("LRANGE")
def lrange(ctx: Session, argv: list[Any]) -> list[object]:
    items: KvList | None = ctx.keyspace.read_as(argv[1], KvList)
    if items is None:
        return []
    bounds = _clamp(argv[2], argv[3], len(items))
    return [] if bounds is None else _slice(items, *bounds)


@command("LSET")
def lset(ctx: Session, argv: list[Any]) -> str:
    keyspace, key, index = ctx.keyspace, argv[1], argv[2]
    items: KvList | None = keyspace.peek_as(key, KvList)
    if items is None:
        raise NoKeyError("no such key")
    if not -len(items) <= index < len(items):
        raise OutOfRangeError("index out of range")
    items[index] = argv[3]
    keyspace.changed(key, items)
    return OK


@command("LREM")
def lrem(ctx: Session, argv: list[Any]) -> int:
    keyspace, key, count = ctx.keyspace, argv[1], argv[2]
    items: KvList | None = keyspace.peek_as(key, KvList)
    if items is None:
        return 0
    matches = matcher(argv[3])
    limit = abs(count) or len(items)
    kept: list[object] = []
    removed = 0
    for item in (items if count >= 0 else reversed(items)):
        if removed < limit and matches(item):
            removed += 1
        else:
            kept.append(item)
    if removed:
        if count < 0:
            kept.reverse()
        items.clear()
        items.extend(kept)
        keyspace.changed(key, items)
    return removed


@command("LTRIM")
def ltrim(ctx: Session, argv: list[Any]) -> str:
    keyspace, key = ctx.keyspace, argv[1]
    items: KvList | None = keyspace.peek_as(key, KvList)
    if items is None:
        return OK
    size = len(items)
    bounds = _clamp(argv[2], argv[3], size)
    start, stop = bounds if bounds is not None else (size, size - 1)
    for _ in range(start):
        items.popleft()
    for _ in range(size - 1 - stop if bounds is not None else 0):
        items.pop()
    keyspace.changed(key, items)
    return OK


def _find(items: KvList, element: object) -> int:
    matches = matcher(element)
    return next((i for i, item in enumerate(items) if matches(item)), -1)


@command("LINSERT")
def linsert(ctx: Session, argv: list[Any]) -> int:
    keyspace, key = ctx.keyspace, argv[1]
    items: KvList | None = keyspace.peek_as(key, KvList)
    if items is None:
        return 0
    index = _find(items, argv[3])
    if index < 0:
        return -1
    items.insert(index if argv[2].upper() == "BEFORE" else index + 1, argv[4])
    keyspace.changed(key, items)
    return len(items)


@command("LPOS")
def lpos(ctx: Session, argv: list[Any]) -> object:
    options = _LPOS_OPTIONS(argv) if len(argv) > 3 else {}
    rank: Any = options.get("RANK", 1)
    count: Any = options.get("COUNT")
    maxlen: Any = options.get("MAXLEN", 0)
    if rank == 0:
        raise OutOfRangeError("RANK can't be zero: use 1 to start from the first match, 2 from "
                              "the second ... or use negative to start from the end of the list")
    if count is not None and count < 0:
        raise OutOfRangeError("COUNT can't be negative")
    if maxlen < 0:
        raise OutOfRangeError("MAXLEN can't be negative")
    items: KvList | None = ctx.keyspace.read_as(argv[1], KvList)
    if items is None:
        return None if count is None else []
    size = len(items)
    matches = matcher(argv[2])
    walk = enumerate(items) if rank > 0 else ((size - 1 - i, item)
                                              for i, item in enumerate(reversed(items)))
    skip, wanted = abs(rank) - 1, 1 if count is None else count
    found: list[int] = []
    for index, item in islice(walk, min(maxlen, size) if maxlen else None):
        if matches(item):
            if skip:
                skip -= 1
                continue
            found.append(index)
            if len(found) == wanted:
                break
    if count is None:
        return found[0] if found else None
    return found


def _move(ctx: Session, source: Key, destination: Key, *, from_left: bool, to_left: bool) -> object:
    keyspace = ctx.keyspace
    items: KvList | None = keyspace.peek_as(source, KvList)
    if items is None:
        return None
    target: KvList | None = keyspace.peek_as(destination, KvList)  # WRONGTYPE before popping
    element = items.popleft() if from_left else items.pop()
    if target is None:
        target = KvList()
        keyspace.add(destination, target)
    if to_left:
        target.appendleft(element)
    else:
        target.append(element)
    keyspace.changed(destination, target)
    keyspace.changed(source, items)
    return element


@command("LMOVE")
def lmove(ctx: Session, argv: list[Any]) -> object:
    return _move(ctx, argv[1], argv[2], from_left=argv[3].upper() == "LEFT",
                 to_left=argv[4].upper() == "LEFT")


@command("RPOPLPUSH")
def rpoplpush(ctx: Session, argv: list[Any]) -> object:
    return _move(ctx, argv[1], argv[2], from_left=False, to_left=True)


@command("LPOPRPUSH")
def lpoprpush(ctx: Session, argv: list[Any]) -> object:
    return _move(ctx, argv[1], argv[2], from_left=True, to_left=False)
