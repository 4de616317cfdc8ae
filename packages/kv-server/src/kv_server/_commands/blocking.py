"""Blocking list commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLPOPRPUSH.

Each answers at once, as its non-blocking form, when there is an element to take
(and always inside a transaction); otherwise it registers a waiter and its
connection waits (``_blocking.py``). What it logs to the AOF is the non-blocking
form, so a replay never blocks.
"""

from __future__ import annotations

from typing import Any

from kv_protocol.values import Key
from kv_server._blocking import Serve, parse_timeout
from kv_server._dispatch import command
from kv_server._keyspace import KvList
from kv_server._session import Session

from .lists import lmove


def _as_is(value: object) -> object:
    return value


def _pop_serve(name: str) -> Serve:
    def serve(ctx: Session, key: Key) -> tuple[list[Any], Any]:
        return [name, key], lambda element: [key, element]

    return serve


def _move_serve(destination: Key, wherefrom: str, whereto: str) -> Serve:
    def serve(ctx: Session, key: Key) -> tuple[list[Any], Any]:
        return ["LMOVE", key, destination, wherefrom, whereto], _as_is

    return serve


def _block(ctx: Session, keys: list[Key], serve: Serve, timeout: float) -> None:
    """Wait for one of ``keys`` to hold a list; the reply comes when it is served."""
    ctx.state.blocking.block(ctx, keys, serve, timeout)


def _pop(ctx: Session, argv: list[Any], name: str) -> object:
    timeout, keys = parse_timeout(argv[-1]), argv[1:-1]
    keyspace = ctx.keyspace
    for key in keys:
        if keyspace.peek_as(key, KvList) is not None:  # WRONGTYPE, as Redis, for a non-list
            ctx.log_as = [name, key]
            items: KvList = keyspace.read_as(key, KvList)
            element = items.popleft() if name == "LPOP" else items.pop()
            keyspace.changed(key, items)
            return [key, element]
    if not ctx.executing:
        _block(ctx, keys, _pop_serve(name), timeout)
    return None


@command("BLPOP")
def blpop(ctx: Session, argv: list[Any]) -> object:
    return _pop(ctx, argv, "LPOP")


@command("BRPOP")
def brpop(ctx: Session, argv: list[Any]) -> object:
    return _pop(ctx, argv, "RPOP")


def _move(ctx: Session, source: Key, destination: Key, wherefrom: str, whereto: str,
          timeout_arg: float) -> object:
    timeout = parse_timeout(timeout_arg)
    if ctx.keyspace.peek_as(source, KvList) is not None:
        ctx.log_as = ["LMOVE", source, destination, wherefrom, whereto]
        return lmove(ctx, ctx.log_as)
    if not ctx.executing:
        _block(ctx, [source], _move_serve(destination, wherefrom, whereto), timeout)
    return None


@command("BLMOVE")
def blmove(ctx: Session, argv: list[Any]) -> object:
    return _move(ctx, argv[1], argv[2], argv[3].upper(), argv[4].upper(), argv[5])


@command("BRPOPLPUSH")
def brpoplpush(ctx: Session, argv: list[Any]) -> object:
    return _move(ctx, argv[1], argv[2], "RIGHT", "LEFT", argv[3])


@command("BLPOPRPUSH")
def blpoprpush(ctx: Session, argv: list[Any]) -> object:
    return _move(ctx, argv[1], argv[2], "LEFT", "RIGHT", argv[3])
