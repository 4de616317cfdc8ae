"""How a command is declared: its arguments, their kinds, and what is derived from them.

The table itself is in the ``_table_*`` modules, one per family, and is assembled in
:mod:`kv_protocol.commands`. Conventions:

- argument positions count after the command name (``SET k v`` has 2 arguments);
- a command whose name has two words (``CLIENT KILL``) is a subcommand of the
  container named by its first word; its arguments count after both words;
- only the last argument may be ``OPTIONS``; a ``multiple`` argument is the last
  one or is followed only by required single arguments (``BLPOP key [key ...]
  timeout``: the timeout is *trailing*, found by counting from the end); optional
  arguments come last, and a command has either optional single arguments, a
  multiple tail, or options, never two of these.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ._kinds import ArgKind, accepts, argument_error
from .errors import CommandSyntaxError
from .values import describe


class Flag(enum.Flag):
    """What the server must know about a command before running it."""

    WRITE = enum.auto()
    """May change the keyspace: refused when writes are refused, logged to the AOF."""
    READONLY = enum.auto()
    """Reads the keyspace and changes nothing."""
    ADMIN = enum.auto()
    """Administers the server or other clients rather than data."""
    LOADING_OK = enum.auto()
    """Allowed while the server is still loading its dataset."""
    NOT_QUEUED = enum.auto()
    """Runs at once after MULTI instead of being queued (MULTI, EXEC, DISCARD, WATCH)."""
    NO_MULTI = enum.auto()
    """Refused inside a transaction: queueing it aborts the transaction."""
    PUBSUB = enum.auto()
    """Allowed on a connection that has subscriptions (the others are refused there)."""
    BLOCKING = enum.auto()
    """May wait for data before it answers; inside a transaction it answers at once."""
    DENYOOM = enum.auto()
    """May grow memory: past ``--maxmemory`` it evicts keys first or answers OOM."""


class Reply(enum.Enum):
    """What a successful reply holds."""

    STATUS = "status text such as OK or PONG"
    VALUE = "a stored value, or null"
    INTEGER = "an integer"
    TEXT = "text"
    LIST = "a list"
    MAP = "a map"


@dataclass(frozen=True, slots=True)
class Option:
    """A keyword option such as ``EX seconds`` or ``NX``.

    Options that share a ``group`` exclude each other (``EX`` and ``PX``, ``NX``
    and ``XX``), as Redis's syntax does.
    """

    word: str
    arg: Arg | None = None
    group: str = ""

    def render(self) -> str:
        return f"{self.word} {self.arg.name}" if self.arg else self.word


@dataclass(frozen=True, slots=True)
class Arg:
    """One declared argument; ``parts`` makes it a block repeated as a unit."""

    name: str
    kind: ArgKind = ArgKind.VALUE
    optional: bool = False
    multiple: bool = False
    parts: tuple[Arg, ...] = ()
    choices: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()

    @property
    def flat(self) -> tuple[Arg, ...]:
        return self.parts or (self,)

    def render(self) -> str:
        if self.kind is ArgKind.OPTIONS:
            groups: dict[str, list[str]] = {}
            for index, option in enumerate(self.options):
                groups.setdefault(option.group or str(index), []).append(option.render())
            return " ".join(f"[{' | '.join(words)}]" for words in groups.values())
        if self.kind is ArgKind.CHOICE:
            one = "|".join(self.choices)
        else:
            one = " ".join(p.name.upper() if p.kind is ArgKind.TOKEN else p.name for p in self.flat)
        text = f"{one} [{one} ...]" if self.multiple else one
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command. The fields after ``notes`` are derived from ``args``."""

    name: str
    group: str
    summary: str
    args: tuple[Arg, ...] = ()
    flags: Flag = Flag(0)  # noqa: RUF009  (an immutable enum value)
    reply: Reply = Reply.STATUS
    since: str = "0.1.0"
    notes: str = ""
    positional: tuple[Arg, ...] = field(init=False)
    """Flattened arguments at fixed positions (required, then optional singles)."""
    tail: tuple[Arg, ...] = field(init=False)
    """Flattened arguments that repeat, cycling, after the positional ones."""
    trailing: tuple[Arg, ...] = field(init=False)
    """Required single arguments after the tail, at fixed positions from the end."""
    options: Arg | None = field(init=False)
    """The ``OPTIONS`` argument, which follows the positional ones, or None."""
    min_args: int = field(init=False)
    max_args: int | None = field(init=False)
    """None when the last argument is ``multiple``."""

    def __post_init__(self) -> None:
        _check_declaration(self.name, self.args)
        positional: list[Arg] = []
        tail: tuple[Arg, ...] = ()
        trailing: list[Arg] = []
        options = None
        required = 0
        for arg in self.args:
            if arg.kind is ArgKind.OPTIONS:
                options = arg
            elif tail:
                trailing.extend(arg.flat)
                required += len(arg.flat)
            elif arg.multiple:
                tail = arg.flat
                if not arg.optional:
                    positional.extend(arg.flat)
                    required += len(arg.flat)
            else:
                positional.extend(arg.flat)
                required += 0 if arg.optional else len(arg.flat)
        most = len(positional)
        if options is not None:
            # Room for every option, so that a call naming two of one group (EX and
            # PX) reaches parse_options and gets its syntax error, not an arity one.
            most += sum(2 if option.arg else 1 for option in options.options)
        set_ = object.__setattr__
        set_(self, "positional", tuple(positional))
        set_(self, "tail", tail)
        set_(self, "trailing", tuple(trailing))
        set_(self, "options", options)
        set_(self, "min_args", required)
        set_(self, "max_args", None if tail else most)

    @property
    def words(self) -> int:
        """How many argv entries the name takes (2 for a subcommand)."""
        return self.name.count(" ") + 1

    @property
    def syntax(self) -> str:
        return " ".join([self.name, *(arg.render() for arg in self.args)])

    def arg_at(self, index: int, argc: int) -> Arg:
        """The declaration of argument ``index`` (0-based, after the name) in a call of
        ``argc`` arguments (which places any trailing arguments).

        Past the positional arguments of a command with options, that is the
        ``OPTIONS`` argument as a whole.
        """
        if index < len(self.positional):
            return self.positional[index]
        if self.options is not None:
            return self.options
        from_end = argc - index
        if 0 < from_end <= len(self.trailing):
            return self.trailing[-from_end]
        return self.tail[(index - len(self.positional)) % len(self.tail)]

    def check_arity(self, argc: int) -> bool:
        """Whether ``argc`` arguments (after the name) is a valid count."""
        if argc < self.min_args:
            return False
        if self.max_args is not None:
            return argc <= self.max_args
        return (argc - len(self.positional) - len(self.trailing)) % len(self.tail) == 0

    def key_indices(self, argc: int) -> list[int]:
        """0-based argument indices that name keys, for a call with ``argc`` arguments."""
        return [i for i in range(argc) if self.arg_at(i, argc).kind is ArgKind.KEY]

    @property
    def key_spec(self) -> tuple[int, int, int]:
        """Redis-style ``(first_key, last_key, step)``, 1-based; ``(0, 0, 0)`` if keyless.

        ``last_key`` is negative when keys continue to the end of the arguments: -1,
        or -2 when one trailing argument follows them (BLPOP), as Redis counts.
        """
        fixed = [i + 1 for i, a in enumerate(self.positional) if a.kind is ArgKind.KEY]
        if any(a.kind is ArgKind.KEY for a in self.tail):
            first = fixed[0] if fixed else len(self.positional) + 1
            return first, -1 - len(self.trailing), len(self.tail)
        if not fixed:
            return 0, 0, 0
        steps = {b - a for a, b in itertools.pairwise(fixed)}
        return fixed[0], fixed[-1], steps.pop() if len(steps) == 1 else 1

    def parse_options(self, argv: Sequence[object]) -> dict[str, object]:
        """The options given after the positional arguments: word -> argument (or True).

        Raises:
            CommandSyntaxError: an unknown word, a repeated option, two options of
                one group, or an option without its argument.
            ArgumentTypeError, NotIntegerError: an option's argument of the wrong kind.
        """
        assert self.options is not None, f"{self.name} has no options"
        declared = {option.word: option for option in self.options.options}
        found: dict[str, object] = {}
        groups: set[str] = set()
        index = self.words + len(self.positional)
        while index < len(argv):
            word = argv[index]
            option = declared.get(word.upper()) if type(word) is str else None
            if option is None:
                raise CommandSyntaxError(
                    f"syntax error: {describe(word)} is not an option of '{self.name.lower()}'; "
                    f"it takes {self.options.render()}")
            if option.word in found or (option.group and option.group in groups):
                raise CommandSyntaxError(
                    f"syntax error: '{self.name.lower()}' takes one of "
                    f"{' | '.join(o.word for o in self.options.options if o.group == option.group)}"
                    if option.group and option.word not in found
                    else f"syntax error: option {option.word} is given twice")
            groups.add(option.group)
            found[option.word] = True
            if option.arg is not None:
                index += 1
                if index == len(argv):
                    raise CommandSyntaxError(f"syntax error: option {option.word} needs its "
                                             f"{option.arg.name}")
                if not accepts(option.arg.kind, argv[index]):
                    raise argument_error(self, option.arg, argv[index])
                found[option.word] = argv[index]
            index += 1
        return found


def _check_declaration(name: str, args: tuple[Arg, ...]) -> None:
    if name != name.upper() or name.count(" ") > 1:
        raise ValueError(f"{name!r}: names are upper case, one or two words")
    for i, arg in enumerate(args):
        last = i == len(args) - 1
        if arg.kind is ArgKind.OPTIONS and not last:
            raise ValueError(f"{name}: only the last argument may be options")
        if arg.multiple and any(a.optional or a.multiple or a.kind is ArgKind.OPTIONS
                                for a in args[i + 1:]):
            raise ValueError(f"{name}: only required single arguments may follow a multiple one")
        if i and args[i - 1].optional and not arg.optional:
            raise ValueError(f"{name}: a required argument follows an optional one")
        if (arg.multiple or arg.kind is ArgKind.OPTIONS) and any(a.optional for a in args[:i]):
            raise ValueError(f"{name}: optional singles do not mix with a tail or options")
        if arg.kind is ArgKind.OPTIONS and not (arg.optional and arg.options):
            raise ValueError(f"{name}: options are optional and declare at least one option")
        if arg.kind is ArgKind.CHOICE and not arg.choices:
            raise ValueError(f"{name}: a choice declares its words")
        if any(o.arg is not None and o.arg.kind in _NOT_IN_OPTIONS for o in arg.options):
            raise ValueError(f"{name}: option arguments are not keys, tokens or options")


_NOT_IN_OPTIONS: Final = frozenset({ArgKind.KEY, ArgKind.TOKEN, ArgKind.CHOICE, ArgKind.OPTIONS})


def key(name: str = "key", *, multiple: bool = False) -> Arg:
    return Arg(name, ArgKind.KEY, multiple=multiple)


def value(name: str = "value", *, optional: bool = False) -> Arg:
    return Arg(name, ArgKind.VALUE, optional=optional)


def token(word: str) -> Arg:
    return Arg(word, ArgKind.TOKEN)


def integer(name: str, *, optional: bool = False) -> Arg:
    return Arg(name, ArgKind.INTEGER, optional=optional)


def choice(name: str, *words: str, optional: bool = False) -> Arg:
    return Arg(name, ArgKind.CHOICE, optional=optional, choices=words)


def options(*declared: Option) -> Arg:
    return Arg("options", ArgKind.OPTIONS, optional=True, options=declared)
