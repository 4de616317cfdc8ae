"""String commands: a key holding one value of any storable type.

kv's strings are typed, not byte strings: ``SET k 12345`` stores the integer. The
byte-string commands (APPEND, STRLEN, SETRANGE, GETRANGE) therefore apply to text
and bytes values only; docs/commands.md states the rules.
"""

from __future__ import annotations

from typing import Any

from kv_protocol.commands import BY_NAME
from kv_protocol.errors import ArgumentTypeError, OutOfRangeError, TooBigError, WrongTypeError
from kv_protocol.messages import OK, REPLY_OVERHEAD_BYTES
from kv_protocol.values import type_name
from kv_server._commands.expiry import apply_deadline, deadline_from_options, to_deadline
from kv_server._dispatch import command
from kv_server._keyspace import CONTAINERS, MISSING, wrong_type
from kv_server._session import Session

_SET_OPTIONS = BY_NAME["SET"].parse_options
_GETEX_OPTIONS = BY_NAME["GETEX"].parse_options


def byte_length(value: str | bytes) -> int:
    """Length as Redis measures strings: bytes, so text counts its UTF-8 encoding."""
    if isinstance(value, bytes) or value.isascii():  # isascii is O(1) for str
        return len(value)
    return len(value.encode("utf-8"))


def text_or_bytes(command: str, value: object) -> str | bytes:
    if type(value) is str or type(value) is bytes:
        return value
    raise _not_a_string(command, value)


def _not_a_string(command: str, value: object) -> WrongTypeError:
    if type(value) in CONTAINERS:
        return wrong_type()
    return WrongTypeError(f"{command} needs a text or bytes value; the key holds {type_name(value)}")


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _check_size(ctx: Session, command: str, length: int) -> None:
    # A value that no reply frame could carry would be stored but never read back.
    limit = ctx.state.config.max_frame_bytes - REPLY_OVERHEAD_BYTES
    if length > limit:
        raise TooBigError(f"{command} would make a value of {length} bytes; the limit is {limit}")


@command("SET")
def set_(ctx: Session, argv: list[Any]) -> object:
    keyspace = ctx.keyspace
    if len(argv) == 3:
        keyspace.set(argv[1], argv[2])
        return OK
    options = _SET_OPTIONS(argv)
    key = argv[1]
    deadline = deadline_from_options(keyspace, options, "set")
    old = keyspace.peek(key)
    get = "GET" in options
    if get and type(old) in CONTAINERS:
        raise wrong_type()
    answer = (None if old is MISSING else old) if get else OK
    if ("NX" in options and old is not MISSING) or ("XX" in options and old is MISSING):
        return answer if get else None
    if "KEEPTTL" in options:
        keyspace.replace(key, argv[2])
    else:
        keyspace.set(key, argv[2])
    if deadline is not None:
        apply_deadline(keyspace, key, deadline)
        ctx.log_as = ["SET", key, argv[2], "PXAT", deadline]  # replay must not extend it
    return answer


@command("GET")
def get(ctx: Session, argv: list[Any]) -> object:
    value = ctx.keyspace.read(argv[1])
    if value is MISSING:
        return None
    if type(value) in CONTAINERS:
        raise wrong_type()
    return value


@command("GETSET")
def getset(ctx: Session, argv: list[Any]) -> object:
    keyspace = ctx.keyspace
    old = keyspace.peek(argv[1])
    if type(old) in CONTAINERS:
        raise wrong_type()
    keyspace.set(argv[1], argv[2])
    return None if old is MISSING else old


@command("GETDEL")
def getdel(ctx: Session, argv: list[Any]) -> object:
    keyspace = ctx.keyspace
    value = keyspace.read(argv[1])
    if value is MISSING:
        return None
    if type(value) in CONTAINERS:
        raise wrong_type()
    keyspace.delete(argv[1])
    return value


@command("GETEX")
def getex(ctx: Session, argv: list[Any]) -> object:
    keyspace, key = ctx.keyspace, argv[1]
    options = _GETEX_OPTIONS(argv) if len(argv) > 2 else {}
    value = keyspace.read(key)
    if value is MISSING:
        return None
    if type(value) in CONTAINERS:
        raise wrong_type()
    # As in Redis, the time is checked only once the key is known to be a string.
    deadline = deadline_from_options(keyspace, options, "getex")
    if deadline is not None:
        apply_deadline(keyspace, key, deadline)
        ctx.log_as = ["PEXPIREAT", key, deadline]
    elif "PERSIST" in options and keyspace.deadline(key) is not None:
        keyspace.set_deadline(key, None)
        ctx.log_as = ["PERSIST", key]
    return value


@command("SETNX")
def setnx(ctx: Session, argv: list[Any]) -> int:
    keyspace = ctx.keyspace
    if keyspace.peek(argv[1]) is not MISSING:
        return 0
    keyspace.set(argv[1], argv[2])
    return 1


def _set_with_ttl(ctx: Session, argv: list[Any], scale: int, name: str) -> str:
    keyspace, key = ctx.keyspace, argv[1]
    deadline = to_deadline(keyspace, argv[2], scale, False, name, positive=True)
    keyspace.set(key, argv[3])
    keyspace.set_deadline(key, deadline)
    ctx.log_as = ["SET", key, argv[3], "PXAT", deadline]
    return OK


@command("SETEX")
def setex(ctx: Session, argv: list[Any]) -> str:
    return _set_with_ttl(ctx, argv, 1000, "setex")


@command("PSETEX")
def psetex(ctx: Session, argv: list[Any]) -> str:
    return _set_with_ttl(ctx, argv, 1, "psetex")


@command("MSET")
def mset(ctx: Session, argv: list[Any]) -> str:
    keyspace = ctx.keyspace
    for i in range(1, len(argv), 2):
        keyspace.set(argv[i], argv[i + 1])
    return OK


@command("MGET")
def mget(ctx: Session, argv: list[Any]) -> list[object]:
    read = ctx.keyspace.read
    return [None if (value := read(key)) is MISSING or type(value) in CONTAINERS else value
            for key in argv[1:]]


@command("APPEND")
def append(ctx: Session, argv: list[Any]) -> int:
    keyspace = ctx.keyspace
    key, suffix = argv[1], argv[2]
    old = keyspace.peek(key)
    if old is MISSING:
        new = suffix
    elif type(old) is str:
        if type(suffix) is bytes:
            try:
                suffix = suffix.decode("utf-8")
            except UnicodeDecodeError:
                raise ArgumentTypeError("bytes appended to a text value must be valid UTF-8") from None
        new = old + suffix
    elif type(old) is bytes:
        new = old + (suffix.encode("utf-8") if type(suffix) is str else suffix)
    else:
        raise _not_a_string("APPEND", old)
    length = byte_length(new)
    _check_size(ctx, "APPEND", length)
    keyspace.replace(key, new)
    return length


@command("STRLEN")
def strlen(ctx: Session, argv: list[Any]) -> int:
    value = ctx.keyspace.read(argv[1])
    if value is MISSING:
        return 0
    return byte_length(text_or_bytes("STRLEN", value))


@command("SETRANGE")
def setrange(ctx: Session, argv: list[Any]) -> int:
    keyspace = ctx.keyspace
    key, offset, piece = argv[1], argv[2], argv[3]
    if offset < 0:
        raise OutOfRangeError("offset is out of range")
    found = keyspace.peek(key)
    old = None if found is MISSING else text_or_bytes("SETRANGE", found)
    if not piece:
        return 0 if old is None else byte_length(old)
    raw_piece = _utf8(piece)
    _check_size(ctx, "SETRANGE", offset + len(raw_piece))
    raw = b"" if old is None else _utf8(old)
    if len(raw) < offset:
        raw += bytes(offset - len(raw))
    raw = raw[:offset] + raw_piece + raw[offset + len(raw_piece):]
    new: str | bytes = raw
    if isinstance(piece if old is None else old, str):
        try:
            new = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ArgumentTypeError("SETRANGE would leave a text value that is not valid "
                                    "UTF-8") from None
    keyspace.replace(key, new)
    return len(raw)


@command("GETRANGE")
def getrange(ctx: Session, argv: list[Any]) -> str | bytes:
    value = ctx.keyspace.read(argv[1])
    if value is MISSING:
        return ""
    value = text_or_bytes("GETRANGE", value)
    raw = _utf8(value)
    start, end, size = argv[2], argv[3], len(raw)
    if start < 0 and end < 0 and start > end:
        piece = b""
    else:
        start = max(start + size if start < 0 else start, 0)
        end = min(max(end + size if end < 0 else end, 0), size - 1)
        piece = raw[start:end + 1] if start <= end else b""
    # Text answers text; only a character cut by either end can fail to decode.
    return piece.decode("utf-8", errors="ignore") if type(value) is str else piece
