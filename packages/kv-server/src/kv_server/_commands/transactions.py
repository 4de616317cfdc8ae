"""Transaction commands: MULTI, EXEC, DISCARD, WATCH, UNWATCH (``_transactions.py``)."""

from __future__ import annotations

from typing import Any

from kv_protocol.errors import ServerError
from kv_protocol.messages import OK
from kv_server import _transactions
from kv_server._dispatch import command
from kv_server._session import Session
from kv_server._transactions import Watch


@command("MULTI")
def multi(ctx: Session, argv: list[Any]) -> str:
    if ctx.multi is not None:
        raise ServerError("MULTI calls can not be nested")
    ctx.multi = []
    ctx.update()
    return OK


@command("EXEC")
def exec_(ctx: Session, argv: list[Any]) -> object:
    return _transactions.run_transaction(ctx.state.dispatcher, ctx, argv)


@command("DISCARD")
def discard(ctx: Session, argv: list[Any]) -> str:
    if ctx.multi is None:
        raise ServerError("DISCARD without MULTI")
    _transactions.end(ctx)
    return OK


@command("WATCH")
def watch(ctx: Session, argv: list[Any]) -> str:
    if ctx.multi is not None:
        raise ServerError("WATCH inside MULTI is not allowed")
    if ctx.watch is None:
        ctx.watch = Watch(ctx.keyspace)
    for key in argv[1:]:
        ctx.watch.add(key)
    return OK


@command("UNWATCH")
def unwatch(ctx: Session, argv: list[Any]) -> str:
    _transactions.unwatch(ctx)
    return OK
