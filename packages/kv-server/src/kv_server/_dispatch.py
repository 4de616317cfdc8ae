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
   absolute), and marks its session ``wrote``: the connection then holds the
   batch's replies until the record is on disk. While the AOF cannot be written,
   write commands are refused with MISCONF before they run.
6. A read-only session (the read-only password) may run every command flagged
   neither ``write`` nor ``admin``; the others are refused with NOPERM after the
   generic checks and before they run. The choice is made once per batch, so other
   sessions pay nothing for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kv_protocol.commands import (
    BY_NAME,
    COMMANDS,
    FAST_TYPES,
    Arg,
    CommandSpec,
    Flag,
    argument_error,
    arity_message,
    predicate,
)
from kv_protocol.errors import (
    LocalProtocolError,
    MisconfError,
    NoPermError,
    ProtoError,
    RemoteProtocolError,
    ServerError,
    TooBigError,
)
from kv_protocol.framing import DEFAULT_MAX_FRAME_SIZE
from kv_protocol.messages import encode_error, encode_reply
from kv_protocol.values import describe

from ._session import PROTOCOL_ERROR, Session
from ._stats import Stats

if TYPE_CHECKING:
    from ._aof import AppendOnlyFile

Handler = Callable[["Session", list[Any]], object]
_H = TypeVar("_H", bound=Handler)

_REGISTRY: dict[str, Handler] = {}


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


_Check = tuple[frozenset[type], Callable[[object], bool], Arg]


def _check(arg: Arg) -> _Check:
    return FAST_TYPES[arg.kind], predicate(arg), arg


FastCheck = Callable[[list[Any]], bool]


def _exact(offset: int, n: int, types: tuple[frozenset[type], ...]) -> FastCheck | None:
    """A loop-free check for calls of exactly ``n`` entries, if there are at most 3 types.

    Measured with callgrind, an explicit ``type(a[i]) in t`` costs half of the same
    test in a loop and a fifth of one done with ``map``; per command that is a
    tenth of dispatch.
    """
    if len(types) == 0:
        return lambda argv: len(argv) == n
    if len(types) == 1:
        (t1,) = types
        return lambda argv: len(argv) == n and type(argv[offset]) in t1
    if len(types) == 2:
        t1, t2 = types
        return lambda argv: (len(argv) == n and type(argv[offset]) in t1
                             and type(argv[offset + 1]) in t2)
    if len(types) == 3:
        t1, t2, t3 = types
        return lambda argv: (len(argv) == n and type(argv[offset]) in t1
                             and type(argv[offset + 1]) in t2 and type(argv[offset + 2]) in t3)
    return None


def _fast_check(offset: int, min_len: int, max_len: int, types: tuple[frozenset[type], ...],
                tail: tuple[frozenset[type], ...]) -> FastCheck:
    """A check that passes valid calls of plain scalars with as few steps as possible.

    It answers True (valid) or False (look closer: maybe invalid, maybe a list or
    map value). The call with only the required arguments (``SET k v``, ``LPUSH k
    v``, ``RPOP k``), the one clients send most, is tested first without a loop.
    """
    exact = _exact(offset, min_len, types[:min_len - offset])
    if exact is not None and not tail and min_len == max_len:
        return exact

    def general(argv: list[Any]) -> bool:
        n = len(argv)
        if not min_len <= n <= max_len or (tail and (n - offset - len(types)) % len(tail)):
            return False
        # Without a tail, arguments past the positional ones are options, which the
        # command parses itself (CommandSpec.parse_options).
        for index in range(offset, n if tail else min(n, offset + len(types))):
            at = index - offset
            allowed = types[at] if at < len(types) else tail[(at - len(types)) % len(tail)]
            if type(argv[index]) not in allowed:
                return False
        return True

    if exact is None:
        return general
    return lambda argv: exact(argv) or general(argv)


@dataclass(slots=True, eq=False)
class Entry:
    """A command ready to run: its spec, its function, precomputed checks, counters.

    Lengths and indices count the whole command array, name included.
    """

    spec: CommandSpec
    handler: Handler
    fast_check: FastCheck
    min_len: int
    max_len: int
    positional: tuple[tuple[int, _Check], ...]
    tail_start: int
    tail: tuple[_Check, ...]
    write: bool
    for_readers: bool
    """Allowed on read-only sessions: flagged neither WRITE nor ADMIN."""
    calls: int = 0
    failed: int = 0
    """Runs that answered an error (Redis failed_calls)."""
    rejected: int = 0
    """Calls refused before running: arity, argument kinds, NOPERM (Redis rejected_calls)."""

    @classmethod
    def build(cls, spec: CommandSpec, handler: Handler) -> Entry:
        offset = spec.words
        positional = tuple((offset + i, _check(arg)) for i, arg in enumerate(spec.positional))
        tail = tuple(_check(arg) for arg in spec.tail)
        min_len = offset + spec.min_args
        max_len = sys.maxsize if spec.max_args is None else offset + spec.max_args
        fast = _fast_check(offset, min_len, max_len, tuple(check[0] for _, check in positional),
                           tuple(check[0] for check in tail))
        return cls(spec, handler, fast, min_len, max_len, positional, offset + len(positional), tail,
                   Flag.WRITE in spec.flags, not spec.flags & (Flag.WRITE | Flag.ADMIN))

    def check(self, argv: list[Any]) -> ServerError | None:
        """The error for a wrong arity or argument kind, or None."""
        n = len(argv)
        tail, start = self.tail, self.tail_start
        if n < self.min_len or n > self.max_len or (tail and (n - start) % len(tail)):
            return ServerError(arity_message(self.spec.name))
        for index, (types, ok, arg) in self.positional:
            if index < n and type(argv[index]) not in types and not ok(argv[index]):
                return argument_error(self.spec, arg, argv[index])
        for index in range(start, n if tail else start):
            types, ok, arg = tail[(index - start) % len(tail)]
            if type(argv[index]) not in types and not ok(argv[index]):
                return argument_error(self.spec, arg, argv[index])
        return None


class _Container(dict[str, Entry]):
    """The subcommands of a container command such as CLIENT, by upper-case name."""


class Dispatcher:
    """Runs command arrays against a session; one per server (it owns the counters)."""

    def __init__(self, stats: Stats, max_frame_bytes: int = DEFAULT_MAX_FRAME_SIZE,
                 tick: Callable[[], None] = lambda: None) -> None:
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
        self.entries: dict[str, Entry] = {spec.name: Entry.build(spec, _REGISTRY[spec.name])
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
            return self._error(exc)
        return self._run(ctx, entry, argv)

    def _run(self, ctx: Session, entry: Entry, argv: list[Any]) -> bytes:
        """Run a looked-up, checked command; the reply frame."""
        ctx.last_command = entry
        aof = self.aof
        if entry.write and aof is not None:
            return self._execute_logged(ctx, entry, argv, aof)
        try:
            value = entry.handler(ctx, argv)
        except ServerError as exc:
            entry.failed += 1
            return self._error(exc)
        entry.calls += 1
        return self._reply(value)

    def execute_readonly(self, ctx: Session, argv: Any) -> bytes:
        """``execute`` for a read-only session: NOPERM for write and admin commands (rule 6).

        Raises:
            RemoteProtocolError: ``argv`` is not a command array.
        """
        try:
            entry = self.entry_for(argv)
        except ServerError as exc:
            return self._error(exc)
        if not entry.for_readers:
            entry.rejected += 1
            kind = "a write" if entry.write else "an admin"
            return self._error(NoPermError(
                f"this connection is read-only: {entry.spec.name} is {kind} command"))
        return self._run(ctx, entry, argv)

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
            ctx.wrote = True
        ctx.log_as = None
        return self._reply(value)

    def _reply(self, value: object) -> bytes:
        try:
            return encode_reply(value, self.max_frame_bytes)
        except LocalProtocolError as exc:
            return self._error(TooBigError(str(exc)))

    def execute_batch(self, ctx: Session, items: list[object]) -> bytes:
        """Run every command decoded from one read; all replies as one blob.

        The replies stay in ``ctx.replies`` until the next batch, so that a batch whose
        AOF write failed can have its write replies swapped for MISCONF errors.
        """
        self.tick()
        execute = self.execute_readonly if ctx.readonly else self.execute
        ctx.commands += len(items)
        replies: list[bytes] = []
        append = replies.append
        try:
            for argv in items:
                append(execute(ctx, argv))
                if ctx.closing is not None:  # it killed itself: nothing after runs, as in Redis
                    break
        except RemoteProtocolError as exc:
            append(self.protocol_error(ctx, exc))
        if ctx.wrote:  # kept only while the batch waits for the AOF
            ctx.replies = replies
        return b"".join(replies)

    def unpersisted(self, items: list[object], replies: list[bytes], reason: str) -> bytes:
        """A batch's replies with every write command's reply replaced by MISCONF.

        For a batch whose AOF group could not be written: its writes ran in memory
        but are not on disk, so they must not be acknowledged.
        """
        refusal = encode_error(MisconfError(f"not persisted: {reason}"))
        out = []
        for index, reply in enumerate(replies):
            try:
                write = index < len(items) and self.entry_for(items[index]).write
            except (ServerError, RemoteProtocolError):
                write = False
            out.append(refusal if write else reply)
        return b"".join(out)

    def protocol_error(self, ctx: Session | None, exc: RemoteProtocolError) -> bytes:
        """The PROTO frame for a malformed frame or command; the session must close."""
        self.stats.protocol_errors += 1
        if ctx is not None:
            ctx.close_soon(PROTOCOL_ERROR, interrupt=False)
        return self._error(ProtoError(str(exc)))

    def _error(self, error: ServerError) -> bytes:
        self.stats.error_replies[error.code] += 1
        return encode_error(error)
