"""A command ready to run: its table entry, its function, and its argument checks.

The checks are compiled once per command from the table, so that dispatch runs the
cheapest test that can pass a valid call (``_fast_check``) and the full one
(:meth:`Entry.check`) only when that fails.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kv_protocol.commands import FAST_TYPES, Arg, CommandSpec, Flag, argument_error, arity_message, predicate
from kv_protocol.errors import ServerError, TooBigError

if TYPE_CHECKING:
    from ._session import Session

Handler = Callable[["Session", list[Any]], object]

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
                tail: tuple[frozenset[type], ...],
                trailing: tuple[frozenset[type], ...] = ()) -> FastCheck:
    """A check that passes valid calls of plain scalars with as few steps as possible.

    It answers True (valid) or False (look closer: maybe invalid, maybe a list or
    map value). The call with only the required arguments (``SET k v``, ``LPUSH k
    v``, ``RPOP k``), the one clients send most, is tested first without a loop.
    """
    exact = _exact(offset, min_len, types[:min_len - offset - len(trailing)] + trailing)
    if exact is not None and not tail and min_len == max_len:
        return exact
    after = len(trailing)

    def general(argv: list[Any]) -> bool:
        n = len(argv)
        if not min_len <= n <= max_len or (tail and (n - offset - len(types) - after) % len(tail)):
            return False
        # Without a tail, arguments past the positional ones are options, which the
        # command parses itself (CommandSpec.parse_options).
        for index in range(offset, n - after if tail else min(n, offset + len(types))):
            at = index - offset
            allowed = types[at] if at < len(types) else tail[(at - len(types)) % len(tail)]
            if type(argv[index]) not in allowed:
                return False
        return all(type(argv[n - after + at]) in allowed for at, allowed in enumerate(trailing))

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
    trailing: tuple[_Check, ...]
    """Checks of the arguments after the tail, counted from the end (BLPOP's timeout)."""
    write: bool
    for_readers: bool
    """Allowed on read-only sessions: flagged neither WRITE nor ADMIN."""
    not_queued: bool
    no_multi: bool
    in_pubsub: bool
    denyoom: bool
    """Checked against --maxmemory before it runs (false for all without a limit)."""
    calls: int = 0
    failed: int = 0
    """Runs that answered an error (Redis failed_calls)."""
    rejected: int = 0
    """Calls refused before running: arity, argument kinds, NOPERM (Redis rejected_calls)."""

    @classmethod
    def build(cls, spec: CommandSpec, handler: Handler, max_arguments: int = sys.maxsize,
              maxmemory: bool = False) -> Entry:
        """``max_arguments`` caps commands of any length (``--max-arguments``), at no
        cost: the fast check refuses what is longer and the full check says why."""
        offset = spec.words
        positional = tuple((offset + i, _check(arg)) for i, arg in enumerate(spec.positional))
        tail = tuple(_check(arg) for arg in spec.tail)
        trailing = tuple(_check(arg) for arg in spec.trailing)
        min_len = offset + spec.min_args
        max_len = max_arguments if spec.max_args is None else offset + spec.max_args
        fast = _fast_check(offset, min_len, max_len, tuple(check[0] for _, check in positional),
                           tuple(check[0] for check in tail), tuple(check[0] for check in trailing))
        return cls(spec, handler, fast, min_len, max_len, positional, offset + len(positional), tail,
                   trailing, Flag.WRITE in spec.flags, not spec.flags & (Flag.WRITE | Flag.ADMIN),
                   Flag.NOT_QUEUED in spec.flags, Flag.NO_MULTI in spec.flags,
                   Flag.PUBSUB in spec.flags, maxmemory and Flag.DENYOOM in spec.flags)

    def check(self, argv: list[Any]) -> ServerError | None:
        """The error for a wrong arity or argument kind, or None."""
        n = len(argv)
        tail, start, trailing = self.tail, self.tail_start, self.trailing
        end = n - len(trailing)
        if n > self.max_len and self.spec.max_args is None:
            return TooBigError(f"a command of {n} elements exceeds the limit of {self.max_len}")
        if n < self.min_len or n > self.max_len or (tail and (end - start) % len(tail)):
            return ServerError(arity_message(self.spec.name))
        for index, (types, ok, arg) in self.positional:
            if index < end and type(argv[index]) not in types and not ok(argv[index]):
                return argument_error(self.spec, arg, argv[index])
        for index in range(start, end if tail else start):
            types, ok, arg = tail[(index - start) % len(tail)]
            if type(argv[index]) not in types and not ok(argv[index]):
                return argument_error(self.spec, arg, argv[index])
        for index, (types, ok, arg) in enumerate(trailing, end):
            if type(argv[index]) not in types and not ok(argv[index]):
                return argument_error(self.spec, arg, argv[index])
        return None
