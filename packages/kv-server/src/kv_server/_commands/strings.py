"""String commands: a key holding one value of any storable type.

kv's strings are typed, not byte strings: ``SET k 12345`` stores the integer. The
byte-string commands (APPEND, STRLEN) therefore apply to text and bytes values
only; docs/commands.md states the rules.
"""

from __future__ import annotations

from typing import Any

from kv_protocol.errors import ArgumentTypeError, TooBigError, WrongTypeError
from kv_protocol.messages import OK, REPLY_OVERHEAD_BYTES
from kv_protocol.values import type_name
from kv_server._dispatch import command
from kv_server._keyspace import MISSING
from kv_server._session import Session


def byte_length(value: str | bytes) -> int:
    """Length as Redis measures strings: bytes, so text counts its UTF-8 encoding."""
    if isinstance(value, bytes) or value.isascii():  # isascii is O(1) for str
        return len(value)
    return len(value.encode("utf-8"))


def _not_a_string(command: str, value: object) -> WrongTypeError:
    return WrongTypeError(f"{command} needs a text or bytes value; the key holds {type_name(value)}")


@command("SET")
def set_(ctx: Session, argv: list[Any]) -> str:
    ctx.keyspace.set(argv[1], argv[2])
    return OK


@command("GET")
def get(ctx: Session, argv: list[Any]) -> object:
    value = ctx.keyspace.read(argv[1])
    return None if value is MISSING else value


@command("GETSET")
def getset(ctx: Session, argv: list[Any]) -> object:
    keyspace = ctx.keyspace
    old = keyspace.peek(argv[1])
    keyspace.set(argv[1], argv[2])
    return None if old is MISSING else old


@command("MSET")
def mset(ctx: Session, argv: list[Any]) -> str:
    keyspace = ctx.keyspace
    for i in range(1, len(argv), 2):
        keyspace.set(argv[i], argv[i + 1])
    return OK


@command("MGET")
def mget(ctx: Session, argv: list[Any]) -> list[object]:
    read = ctx.keyspace.read
    return [None if (value := read(key)) is MISSING else value for key in argv[1:]]


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
    # A value that no reply frame could carry would be stored but never read back.
    limit = ctx.state.config.max_frame_bytes - REPLY_OVERHEAD_BYTES
    if length > limit:
        raise TooBigError(f"APPEND would make a value of {length} bytes; the limit is {limit}")
    keyspace.set(key, new)
    return length


@command("STRLEN")
def strlen(ctx: Session, argv: list[Any]) -> int:
    value = ctx.keyspace.read(argv[1])
    if value is MISSING:
        return 0
    if type(value) is str or type(value) is bytes:
        return byte_length(value)
    raise _not_a_string("STRLEN", value)
