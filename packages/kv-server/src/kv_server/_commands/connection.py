"""Connection commands: PING, ECHO and CLIENT."""

from __future__ import annotations

import time
from typing import Any

from kv_protocol.errors import ServerError
from kv_protocol.handshake import MAX_LABEL_LENGTH, is_label
from kv_protocol.messages import OK
from kv_server._dispatch import command
from kv_server._session import Session


@command("PING")
def ping(ctx: Session, argv: list[Any]) -> object:
    return argv[1] if len(argv) > 1 else "PONG"


@command("ECHO")
def echo(ctx: Session, argv: list[Any]) -> object:
    return argv[1]


@command("CLIENT ID")
def client_id(ctx: Session, argv: list[Any]) -> int:
    return ctx.id


@command("CLIENT GETNAME")
def client_getname(ctx: Session, argv: list[Any]) -> str | None:
    return ctx.name or None


@command("CLIENT SETNAME")
def client_setname(ctx: Session, argv: list[Any]) -> str:
    name: str = argv[2]
    if not is_label(name):
        raise ServerError("Client names cannot contain spaces, newlines or special characters, "
                          f"and are at most {MAX_LABEL_LENGTH} characters.")
    ctx.name = name
    return OK


@command("CLIENT LIST")
def client_list(ctx: Session, argv: list[Any]) -> list[dict[str, object]]:
    now = time.monotonic()
    return [session.describe(now) for session in ctx.state.sessions]


@command("CLIENT KILL")
def client_kill(ctx: Session, argv: list[Any]) -> int:
    killed = 0
    for session_id in dict.fromkeys(argv[3:]):
        target = ctx.state.sessions.get(session_id)
        if target is not None and target.closing is None:
            target.close_soon(f"killed by client {ctx.id}", interrupt=target is not ctx)
            killed += 1
    return killed
