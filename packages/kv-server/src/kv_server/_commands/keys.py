"""Commands on keys whatever their type."""

from __future__ import annotations

from typing import Any

from kv_server._dispatch import command
from kv_server._glob import compile_glob
from kv_server._keyspace import MISSING
from kv_server._session import Session


@command("DEL")
def delete(ctx: Session, argv: list[Any]) -> int:
    remove = ctx.keyspace.delete
    return sum(remove(key) for key in argv[1:])


@command("EXISTS")
def exists(ctx: Session, argv: list[Any]) -> int:
    read = ctx.keyspace.read
    return sum(read(key) is not MISSING for key in argv[1:])


@command("TYPE")
def type_(ctx: Session, argv: list[Any]) -> str:
    return ctx.keyspace.type_of(argv[1])


@command("KEYS")
def keys(ctx: Session, argv: list[Any]) -> list[object]:
    matches = compile_glob(argv[1])
    return [key for key in ctx.keyspace if matches(key)]


@command("DBSIZE")
def dbsize(ctx: Session, argv: list[Any]) -> int:
    return len(ctx.keyspace)
