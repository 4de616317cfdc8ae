"""Persistence commands: SAVE, BGSAVE, LASTSAVE and CONVERT.

They hand the work to the server's :class:`~kv_server._persistence.Persistence`;
a server run without one (in-process tests) answers that persistence is off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_protocol.errors import ServerError
from kv_protocol.messages import OK
from kv_server._dispatch import command
from kv_server._session import Session

if TYPE_CHECKING:
    from kv_server._persistence import Persistence


def _persistence(ctx: Session) -> Persistence:
    persistence = ctx.state.persistence
    if persistence is None:
        raise ServerError("persistence is not running on this server")
    return persistence


@command("SAVE")
def save(ctx: Session, argv: list[Any]) -> str:
    _persistence(ctx).save()
    return OK


@command("BGSAVE")
def bgsave(ctx: Session, argv: list[Any]) -> str:
    _persistence(ctx).bgsave()
    return "Background saving started"


@command("LASTSAVE")
def lastsave(ctx: Session, argv: list[Any]) -> int:
    return int(_persistence(ctx).last_save)


@command("CONVERT")
def convert(ctx: Session, argv: list[Any]) -> str:
    persistence = _persistence(ctx)
    if len(argv) > 1:
        encoding = argv[1].lower()
    else:
        encoding = "plaintext" if persistence.encoding == "binary" else "binary"
    persistence.bgsave(encoding)
    return f"Background conversion to {encoding} started"
