"""Dispatch: find a command, run the generic checks once, then call its function.

Rules of this module:

1. A command is one entry in ``kv_protocol.commands`` plus one function registered
   with ``@command(NAME)`` beside its family's code; :class:`Dispatcher` refuses to
   start if the registry and the table disagree in either direction.
2. The generic checks run here, from the spec, before the function: the command
   array's shape, the name, the arity and every argument's kind. A function only
   does its command.
3. A function takes ``(ctx, argv)``, where ``argv`` is the whole command array
   (``argv[0]`` is the name), and returns the reply value or raises a
   :class:`ServerError`. It does no I/O.
4. A command array of the wrong shape (not a non-empty array that starts with text)
   is a protocol error: the commands before it in the batch are answered, then
   PROTO, and the session is marked to close.
5. A write command (flag ``write``) that changed the keyspace is logged to the AOF
   as it ran, or as the command a handler put in ``ctx.log_as`` (relative times made
   absolute), and is added to its session's ``logged``: the connection then holds the
   batch's replies until the record is on disk. While the AOF cannot be written,
   write commands are refused with MISCONF before they run.
6. A read-only session (the read-only password) may run every command flagged
   neither ``write`` nor ``admin``; the others are refused with NOPERM after the
   generic checks and before they run.
7. After MULTI a command is checked (rule 2, rule 6, flag ``no-multi``) and queued
   unless flagged ``not-queued``; a subscribed session runs only commands flagged
   ``pubsub`` (``_transactions.py``, ``_pubsub.py``). These restrictions cost an
   unrestricted session one attribute test per command.
8. A blocking command with nothing to take registers a waiter and ends its batch.
   After every command, keys that a change made ready are served to the clients
   blocked on them, oldest first (``_blocking.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from kv_protocol.commands import BY_NAME, COMMANDS
from kv_protocol.errors import (
    LocalProtocolError,
    MisconfError,
    NoPermError,
    OomError,
    ProtoError,
    RemoteProtocolError,
    ServerError,
    TooBigError,
)
from kv_protocol.framing import DEFAULT_MAX_FRAME_SIZE
from kv_protocol.messages import encode_error, encode_reply
from kv_protocol.values import describe

from ._entry import Entry, Handler
from ._session import PROTOCOL_ERROR, Session
from ._stats import Stats

if TYPE_CHECKING:
    from ._aof import AppendOnlyFile
    from ._blocking import Blocking
    from ._memory import MaxMemory

_H = TypeVar("_H", bound=Handler)

_REGISTRY: dict[str, Handler] = {}
_QUEUED: Final = encode_reply("QUEUED")


def command(name: str) -> Callable[[_H], _H]:
    """Register the function that implements the table's command ``name``."""
    if name not in BY_NAME:
        raise LookupError(f"{name} is not in the command table (kv_protocol.commands)")

    def register(handler: _H) -> _H:
        if name in _REGISTRY:
            raise LookupError(f"{name} is registered twice")
        _REGISTRY[name] = handler
        return handler

    return register


def registered_names() -> frozenset[str]:
    from . import _commands  # noqa: F401  (importing the families registers them)

    return frozenset(_REGISTRY)


class _Container(dict[str, Entry]):
    """The subcommands of a container command such as CLIENT, by upper-case name."""


class Dispatcher:
    """Runs command arrays against a session; one per server (it owns the counters)."""

    def __init__(self, stats: Stats, blocking: Blocking,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_SIZE,
                 tick: Callable[[], None] = lambda: None, *,
                 max_arguments: int = sys.maxsize,
                 output_limit: int = sys.maxsize,
                 maxmemory: MaxMemory | None = None) -> None:
        names = registered_names()
        table = frozenset(BY_NAME)
        if names != table:
            raise RuntimeError(
                f"command table and registry disagree: not implemented {sorted(table - names)}, "
                f"not in the table {sorted(names - table)}"
            )
        self.stats = stats
        self.max_frame_bytes = max_frame_bytes
        self.tick = tick
        """Advances the keyspace clock once per batch (``CommandClock.tick``)."""
        self.aof: AppendOnlyFile | None = None
        """Where write commands are logged; None until persistence starts (and in tests)."""
        self.blocking: Blocking = blocking
        self.output_limit = output_limit
        """Reply bytes a batch holds before the rest of it waits (``--client-output-limit``)."""
        self.maxmemory = maxmemory
        self._replayer: Dispatcher | None = None
        self.entries: dict[str, Entry] = {
            spec.name: Entry.build(spec, _REGISTRY[spec.name], max_arguments, maxmemory is not None)
            for spec in COMMANDS}
        # Top-level lookup by exact name in both common spellings; subcommands hang
        # under their container's name.
        self._top: dict[str, Entry | _Container] = {}
        for name, entry in self.entries.items():
            if " " in name:
                container, sub = name.split()
                subs = self._top.get(container)
                if not isinstance(subs, _Container):
                    subs = self._top[container] = self._top[container.lower()] = _Container()
                subs[sub] = entry
            else:
                self._top[name] = self._top[name.lower()] = entry

    def for_replay(self) -> Dispatcher:
        """A dispatcher without ``--max-arguments`` (built once), for AOF replay: a limit
        lowered since must not refuse records the server already acknowledged."""
        if self._replayer is None:
            self._replayer = Dispatcher(Stats(), self.blocking, self.max_frame_bytes)
        return self._replayer

    def entry_for(self, argv: Any) -> Entry:
        """The entry that runs ``argv``, after the generic checks (rule 2).

        Raises:
            RemoteProtocolError: ``argv`` is not a command array.
            ServerError: unknown command, wrong arity or argument kind.
        """
        if type(argv) is not list or not argv or type(argv[0]) is not str:
            raise RemoteProtocolError(
                f"a command is a non-empty array that starts with its name, got {describe(argv)}"
            )
        name = argv[0]
        found = self._top.get(name) or self._top.get(name.upper())
        if found is None:
            raise ServerError(f"unknown command '{name:.64}'")
        if isinstance(found, _Container):
            sub = argv[1] if len(argv) > 1 else None
            found_sub = found.get(sub.upper()) if type(sub) is str else None
            if found_sub is None:
                raise ServerError(
                    f"unknown subcommand {describe(sub)} for '{name.lower():.64}'; "
                    f"try one of {', '.join(sorted(found))}"
                )
            entry = found_sub
        else:
            entry = found
        if not entry.fast_check(argv):
            error = entry.check(argv)
            if error is not None:
                entry.rejected += 1
                raise error
        return entry

    def execute(self, ctx: Session, argv: Any) -> bytes:
        """Run one command array; the reply frame (success or error).

        Raises:
            RemoteProtocolError: ``argv`` is not a command array.
        """
        try:
            entry = self.entry_for(argv)
        except ServerError as exc:
            if ctx.multi is not None:
                ctx.multi_failed = True
            return self._error(exc)
        if ctx.restricted:
            refusal = self._refusal(ctx, entry)
            if refusal is not None:
                entry.rejected += 1
                if ctx.multi is not None:
                    ctx.multi_failed = True
                return self._error(refusal)
            if ctx.multi is not None and not entry.not_queued:
                ctx.multi.append((entry, argv))
                return _QUEUED
        return self.run_checked(ctx, entry, argv)

    @staticmethod
    def _refusal(ctx: Session, entry: Entry) -> ServerError | None:
        """Why a restricted session may not run or queue ``entry`` (rules 6 and 7)."""
        if ctx.readonly and not entry.for_readers:
            kind = "a write" if entry.write else "an admin"
            return NoPermError(f"this connection is read-only: {entry.spec.name} is {kind} command")
        if ctx.pubsub is not None and ctx.pubsub.count and not entry.in_pubsub:
            return ServerError(
                f"'{entry.spec.name.lower()}' is not allowed while subscribed: only SUBSCRIBE, "
                f"UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE and PING are")
        if ctx.multi is not None and entry.no_multi and not entry.not_queued:
            return ServerError(f"'{entry.spec.name.lower()}' is not allowed inside MULTI")
        return None

    def run_checked(self, ctx: Session, entry: Entry, argv: list[Any]) -> bytes:
        """Run a looked-up, checked command; the reply frame."""
        ctx.last_command = entry
        aof = self.aof
        if entry.denyoom and not ctx.executing:  # EXEC checked for all its commands
            try:
                self.maxmemory.make_room(aof)  # type: ignore[union-attr]  # denyoom: configured
            except OomError as exc:
                entry.rejected += 1
                return self._error(exc)
        if entry.write and aof is not None:
            return self._execute_logged(ctx, entry, argv, aof)
        try:
            value = entry.handler(ctx, argv)
        except ServerError as exc:
            entry.failed += 1
            return self._error(exc)
        entry.calls += 1
        return self._reply(value)

    def _execute_logged(self, ctx: Session, entry: Entry, argv: list[Any],
                        aof: AppendOnlyFile) -> bytes:
        """``execute`` for a write command while an AOF is attached (rule 5)."""
        if aof.error is not None:
            entry.failed += 1
            return self._error(MisconfError(f"writes are refused: {aof.error}"))
        keyspace = ctx.keyspace
        dirty = keyspace.dirty
        try:
            value = entry.handler(ctx, argv)
        except ServerError as exc:
            entry.failed += 1
            ctx.log_as = None
            return self._error(exc)
        entry.calls += 1
        if keyspace.dirty != dirty:
            aof.log(keyspace.clock(), ctx.log_as or argv)
            ctx.logged.append(argv)
        ctx.log_as = None
        return self._reply(value)

    def serve_waiter(self, ctx: Session, argv: list[Any],
                     wrap: Callable[[Any], object]) -> tuple[bytes, bool]:
        """Run the non-blocking command that serves a blocked client (``_blocking.py``);
        the reply frame of the blocking command, and whether a write was logged."""
        entry, aof, keyspace = self.entries[argv[0]], self.aof, ctx.keyspace
        if aof is not None and aof.error is not None:
            return self._error(MisconfError(f"writes are refused: {aof.error}")), False
        dirty = keyspace.dirty
        try:
            value = entry.handler(ctx, argv)
        except ServerError as exc:
            entry.failed += 1
            return self._error(exc), False
        entry.calls += 1
        if aof is None or keyspace.dirty == dirty:
            return self._reply(wrap(value)), False
        aof.log(keyspace.clock(), argv)
        return self._reply(wrap(value)), True

    def _reply(self, value: object) -> bytes:
        try:
            return encode_reply(value, self.max_frame_bytes)
        except LocalProtocolError as exc:
            return self._error(TooBigError(str(exc)))

    def execute_batch(self, ctx: Session, items: list[object]) -> bytes:
        """Run every command decoded from one read; all replies as one blob.

        The replies stay in ``ctx.replies`` until the next batch, so that a batch whose
        AOF write failed can have its write replies swapped for MISCONF errors. A
        command that blocks ends the batch: the commands after it wait in
        ``ctx.pending`` until it is answered (rule 8); so do the commands after the
        replies reach ``output_limit`` bytes, until those are sent.
        """
        self.tick()
        execute, ready, limit = self.execute, self.blocking.ready, self.output_limit
        ctx.commands += len(items)
        replies: list[bytes] = []
        append = replies.append
        size = 0
        try:
            for argv in items:
                frame = execute(ctx, argv)
                append(frame)
                if ready:
                    self.blocking.serve_ready(self)
                if ctx.closing is not None:  # it killed itself: nothing after runs, as in Redis
                    break
                if ctx.blocked is not None:
                    replies.pop()
                    ctx.pending = items[len(replies) + 1:]
                    ctx.commands -= len(ctx.pending)  # counted when they run
                    break
                size += len(frame)
                if size > limit:  # the rest runs once these are sent
                    ctx.pending = items[len(replies):]
                    ctx.commands -= len(ctx.pending)
                    break
        except RemoteProtocolError as exc:
            append(self.protocol_error(ctx, exc))
        if ctx.logged:  # kept only while the batch waits for the AOF
            ctx.replies = replies
        return b"".join(replies)

    def unpersisted(self, items: list[object], logged: list[object], replies: list[bytes],
                    reason: str) -> bytes:
        """A batch's replies with the reply of every command that logged replaced by MISCONF.

        For a batch whose AOF group could not be written: its writes ran in memory
        but are not on disk, so they must not be acknowledged.
        """
        refusal = encode_error(MisconfError(f"not persisted: {reason}"))
        wrote = {id(argv) for argv in logged}
        return b"".join(refusal if index < len(items) and id(items[index]) in wrote else reply
                        for index, reply in enumerate(replies))

    def protocol_error(self, ctx: Session | None, exc: RemoteProtocolError) -> bytes:
        """The PROTO frame for a malformed frame or command; the session must close."""
        self.stats.protocol_errors += 1
        if ctx is not None:
            ctx.close_soon(PROTOCOL_ERROR, interrupt=False)
        return self._error(ProtoError(str(exc)))

    def _error(self, error: ServerError) -> bytes:
        self.stats.error_replies[error.code] += 1
        return encode_error(error)
