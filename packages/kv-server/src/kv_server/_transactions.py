"""Transactions: MULTI queues, EXEC runs the queue at once, WATCH makes EXEC conditional.

Rules of this module:

1. While a session is in MULTI, dispatch checks each command as if to run it (table
   checks, read-only, commands refused inside MULTI) and queues it; a refusal is
   answered at once and makes EXEC answer EXECABORT (``_dispatch.py``).
2. EXEC runs the queue in one synchronous call: nothing awaits between its
   commands, so no other connection's command runs in between. A command that fails
   at run time answers its error in place and the others still run, as in Redis.
3. The transaction's writes reach the AOF as ONE record, ``["MULTI", argv, ...]``
   (``kv_protocol.records.aof``): a crash leaves all of it or, torn, none of it,
   and replay applies it whole. Commands that would take a snapshot (SAVE, BGSAVE,
   CONVERT) are refused inside MULTI: the snapshot would hold the first half of
   the transaction and the record, logged after EXEC, would then replay it again.
4. WATCH registers a :class:`Watch` on each key with the keyspace, which tells it
   of every change, expiry and flush. A key with a deadline that passes before EXEC
   counts as changed even if no one looked at it since (Redis 7 does the same).
   EXEC, DISCARD, UNWATCH and disconnecting release the watch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kv_protocol.errors import (
    ExecAbortError,
    LocalProtocolError,
    MisconfError,
    ServerError,
    TooBigError,
)
from kv_protocol.messages import Encoded, encode_envelopes
from kv_protocol.values import Key

from ._keyspace import MISSING, Keyspace

if TYPE_CHECKING:
    from ._aof import AppendOnlyFile
    from ._dispatch import Dispatcher
    from ._session import Session


class Watch:
    """The keys one session watches and whether any changed since."""

    __slots__ = ("deadlines", "dirty", "keys", "keyspace")

    def __init__(self, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        self.keys: set[Key] = set()
        self.deadlines: list[int] = []
        """Deadlines the watched keys had when watched: one that passes aborts EXEC."""
        self.dirty = False

    def add(self, key: Any) -> None:
        if key in self.keys:
            return
        keyspace = self.keyspace
        if keyspace.peek(key) is not MISSING:  # drops a key already expired, before watching
            deadline = keyspace.deadline(key)
            if deadline is not None:
                self.deadlines.append(deadline)
        self.keys.add(key)
        keyspace.watch(key, self)

    def touched(self, key: Key) -> None:
        self.dirty = True

    def changed(self) -> bool:
        """Whether EXEC must abort: a key was touched, or its deadline passed unnoticed."""
        now = self.keyspace.clock()
        return self.dirty or any(deadline <= now for deadline in self.deadlines)

    def release(self) -> None:
        for key in self.keys:
            self.keyspace.unwatch(key, self)
        self.keys.clear()


def unwatch(ctx: Session) -> None:
    if ctx.watch is not None:
        ctx.watch.release()
        ctx.watch = None


def end(ctx: Session) -> None:
    """Leave MULTI (if in it) and release every watched key."""
    ctx.multi = None
    ctx.multi_failed = False
    unwatch(ctx)
    ctx.update()


class _TransactionLog:
    """Stands in for the AOF while EXEC runs, collecting the writes into one record."""

    __slots__ = ("commands",)

    error: str | None = None

    def __init__(self) -> None:
        self.commands: list[list[object]] = []

    def log(self, timestamp_ms: int, argv: list[object]) -> None:
        self.commands.append(argv)


def run_transaction(dispatcher: Dispatcher, ctx: Session, argv: list[Any]) -> object:
    """EXEC: the queued commands' replies as one list of envelopes, or None (rule 2)."""
    queued, failed, watch = ctx.multi, ctx.multi_failed, ctx.watch
    if queued is None:
        raise ServerError("EXEC without MULTI")
    ctx.watch = None  # released below, after the check
    end(ctx)
    try:
        if failed:
            raise ExecAbortError("transaction discarded because of previous errors")
        if watch is not None and watch.changed():
            return None
    finally:
        if watch is not None:
            watch.release()
    aof: AppendOnlyFile | None = dispatcher.aof
    if aof is not None and aof.error is not None and any(entry.write for entry, _ in queued):
        raise MisconfError(f"writes are refused: {aof.error}")
    if dispatcher.maxmemory is not None and any(entry.denyoom for entry, _ in queued):
        dispatcher.maxmemory.make_room(aof)  # OOM refuses the whole transaction, as in Redis
    collected = _TransactionLog()
    logged_before = len(ctx.logged)
    if aof is not None:
        dispatcher.aof = collected  # type: ignore[assignment]  # log and error are all it uses
    ctx.executing = True
    try:
        frames = [dispatcher.run_checked(ctx, entry, command) for entry, command in queued]
    finally:  # even after a bug in a command: what ran in memory reaches the log
        dispatcher.aof = aof
        ctx.executing = False
        del ctx.logged[logged_before:]  # the queued commands' own entries: EXEC stands for them
        if collected.commands and aof is not None:
            aof.log_transaction(ctx.keyspace.clock(), collected.commands)
            ctx.logged.append(argv)
    try:
        return Encoded(encode_envelopes(frames, dispatcher.max_frame_bytes))
    except LocalProtocolError as exc:
        raise TooBigError(f"the transaction ran, but its replies are too big: {exc}") from None
