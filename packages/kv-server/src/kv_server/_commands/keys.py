"""Commands on keys whatever their type."""

from __future__ import annotations

from typing import Any, Final

from kv_protocol.commands import BY_NAME
from kv_protocol.errors import CommandSyntaxError, NoKeyError, ServerError
from kv_protocol.messages import OK
from kv_server._dispatch import command
from kv_server._glob import compile_glob
from kv_server._keyspace import MISSING, KvHash, KvList, type_name
from kv_server._session import Session

_SCAN_OPTIONS = BY_NAME["SCAN"].parse_options
_COPY_OPTIONS = BY_NAME["COPY"].parse_options
_ENCODINGS: Final[dict[type, str]] = {
    int: "int", float: "float", str: "text", bytes: "bytes", bool: "bool", type(None): "null",
    list: "array", dict: "map", KvList: "deque", KvHash: "dict",
}


@command("DEL")
def delete(ctx: Session, argv: list[Any]) -> int:
    remove = ctx.keyspace.delete
    return sum(remove(key) for key in argv[1:])


@command("UNLINK")
def unlink(ctx: Session, argv: list[Any]) -> int:
    return delete(ctx, argv)


@command("EXISTS")
def exists(ctx: Session, argv: list[Any]) -> int:
    read = ctx.keyspace.read
    return sum(read(key) is not MISSING for key in argv[1:])


@command("TOUCH")
def touch(ctx: Session, argv: list[Any]) -> int:
    return exists(ctx, argv)


@command("TYPE")
def type_(ctx: Session, argv: list[Any]) -> str:
    value = ctx.keyspace.read(argv[1])
    return "none" if value is MISSING else type_name(value)


@command("KEYS")
def keys(ctx: Session, argv: list[Any]) -> list[object]:
    keyspace = ctx.keyspace
    matches = compile_glob(argv[1])
    found = [key for key in keyspace if matches(key)]
    return [key for key in found if keyspace.peek(key) is not MISSING]


@command("SCAN")
def scan(ctx: Session, argv: list[Any]) -> list[object]:
    keyspace, cursors, number = ctx.keyspace, ctx.state.cursors, argv[1]
    options = _SCAN_OPTIONS(argv) if len(argv) > 2 else {}
    count: Any = options.get("COUNT", 10)
    if count < 1:
        raise CommandSyntaxError("syntax error: COUNT must be positive")
    if number == 0:
        number = cursors.start(list(keyspace))
    cursor = cursors.find(number)
    if cursor is None:
        raise NoKeyError(f"cursor {number} is unknown or has expired; start again from 0")
    batch = cursor.keys[cursor.position:cursor.position + count]
    cursor.position += count
    if cursor.position >= len(cursor.keys):
        cursors.end(number)
        number = 0
    pattern: Any = options.get("MATCH")
    matches = compile_glob(pattern) if pattern is not None else None
    wanted: Any = options.get("TYPE")
    found = []
    for key in batch:
        if matches is not None and not matches(key):
            continue
        value = keyspace.peek(key)
        if value is not MISSING and (wanted is None or type_name(value) == wanted.lower()):
            found.append(key)
    return [number, found]


@command("RANDOMKEY")
def randomkey(ctx: Session, argv: list[Any]) -> object:
    return ctx.keyspace.random_key()


def _rename(ctx: Session, argv: list[Any], *, only_if_free: bool) -> bool:
    keyspace, source, target = ctx.keyspace, argv[1], argv[2]
    value = keyspace.peek(source)
    if value is MISSING:
        raise NoKeyError("no such key")
    if source == target and type(source) is type(target):
        return not only_if_free
    if only_if_free and keyspace.peek(target) is not MISSING:
        return False
    deadline = keyspace.deadline(source)
    keyspace.set(target, value)
    if deadline is not None:
        keyspace.set_deadline(target, deadline)
    keyspace.delete(source)
    return True


@command("RENAME")
def rename(ctx: Session, argv: list[Any]) -> str:
    _rename(ctx, argv, only_if_free=False)
    return OK


@command("RENAMENX")
def renamenx(ctx: Session, argv: list[Any]) -> int:
    return int(_rename(ctx, argv, only_if_free=True))


@command("COPY")
def copy(ctx: Session, argv: list[Any]) -> int:
    keyspace, source, target = ctx.keyspace, argv[1], argv[2]
    replace = "REPLACE" in (_COPY_OPTIONS(argv) if len(argv) > 3 else {})
    if source == target and type(source) is type(target):
        raise ServerError("source and destination objects are the same")
    value = keyspace.peek(source)
    if value is MISSING or (not replace and keyspace.peek(target) is not MISSING):
        return 0
    # Only lists and hashes change in place; the values inside them, and string
    # values, are replaced whole by every command, so they can be shared.
    if type(value) is KvList:
        value = KvList(value)
    elif type(value) is KvHash:
        value = KvHash(value)
    deadline = keyspace.deadline(source)
    keyspace.set(target, value)
    if deadline is not None:
        keyspace.set_deadline(target, deadline)
    return 1


@command("DBSIZE")
def dbsize(ctx: Session, argv: list[Any]) -> int:
    return len(ctx.keyspace)


@command("OBJECT ENCODING")
def object_encoding(ctx: Session, argv: list[Any]) -> str | None:
    value = ctx.keyspace.peek(argv[2])  # a subcommand's arguments follow both words
    return None if value is MISSING else _ENCODINGS.get(type(value), type(value).__name__)
