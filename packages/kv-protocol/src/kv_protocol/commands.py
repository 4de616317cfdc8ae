"""The one command table.

Every command kv knows is one :class:`CommandSpec` in :data:`COMMANDS`. The server
dispatches from it (arity, argument kinds, flags), the client's methods and the
CLI's ``--commands`` listing are checked against it, the AOF will log the commands
flagged ``WRITE``, and ``docs/commands.md`` is :func:`render_markdown`'s output.
Nothing else lists commands.

Arguments are declared once, as :class:`Arg` entries; arity, key positions and the
syntax line are derived from them. Conventions:

- argument positions count after the command name (``SET k v`` has 2 arguments);
- a command whose name has two words (``CLIENT KILL``) is a subcommand of the
  container named by its first word; its arguments count after both words;
- only the last argument may be ``multiple``; optional arguments come last, and a
  command has either optional single arguments or a multiple tail, not both.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final


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


class ArgKind(enum.Enum):
    """The type an argument must have; the server checks it before the command runs."""

    KEY = "key"
    """The name of a key: text or bytes."""
    VALUE = "value"
    """Any storable value: null, bool, int, float, text, bytes, list or map."""
    STRING = "string"
    """Text or bytes."""
    TEXT = "text"
    """Text."""
    INTEGER = "integer"
    """An integer (not a bool)."""
    PATTERN = "pattern"
    """A glob-style pattern (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``): text or bytes."""
    TOKEN = "token"
    """The argument's own name, as a keyword; case-insensitive."""


class Reply(enum.Enum):
    """What a successful reply holds."""

    STATUS = "status text such as OK or PONG"
    VALUE = "a stored value, or null"
    INTEGER = "an integer"
    TEXT = "text"
    LIST = "a list"
    MAP = "a map"


@dataclass(frozen=True, slots=True)
class Arg:
    """One declared argument; ``parts`` makes it a block repeated as a unit."""

    name: str
    kind: ArgKind = ArgKind.VALUE
    optional: bool = False
    multiple: bool = False
    parts: tuple[Arg, ...] = ()

    @property
    def flat(self) -> tuple[Arg, ...]:
        return self.parts or (self,)

    def render(self) -> str:
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
    min_args: int = field(init=False)
    max_args: int | None = field(init=False)
    """None when the last argument is ``multiple``."""

    def __post_init__(self) -> None:
        _check_declaration(self.name, self.args)
        positional: list[Arg] = []
        tail: tuple[Arg, ...] = ()
        required = 0
        for arg in self.args:
            if arg.multiple:
                tail = arg.flat
                if not arg.optional:
                    positional.extend(arg.flat)
                    required += len(arg.flat)
            else:
                positional.extend(arg.flat)
                required += 0 if arg.optional else len(arg.flat)
        set_ = object.__setattr__
        set_(self, "positional", tuple(positional))
        set_(self, "tail", tail)
        set_(self, "min_args", required)
        set_(self, "max_args", None if tail else len(positional))

    @property
    def words(self) -> int:
        """How many argv entries the name takes (2 for a subcommand)."""
        return self.name.count(" ") + 1

    @property
    def syntax(self) -> str:
        return " ".join([self.name, *(arg.render() for arg in self.args)])

    def arg_at(self, index: int) -> Arg:
        """The declaration of argument ``index`` (0-based, after the name)."""
        if index < len(self.positional):
            return self.positional[index]
        return self.tail[(index - len(self.positional)) % len(self.tail)]

    def check_arity(self, argc: int) -> bool:
        """Whether ``argc`` arguments (after the name) is a valid count."""
        if argc < self.min_args:
            return False
        if self.max_args is not None:
            return argc <= self.max_args
        return (argc - len(self.positional)) % len(self.tail) == 0

    def key_indices(self, argc: int) -> list[int]:
        """0-based argument indices that name keys, for a call with ``argc`` arguments."""
        return [i for i in range(argc) if self.arg_at(i).kind is ArgKind.KEY]

    @property
    def key_spec(self) -> tuple[int, int, int]:
        """Redis-style ``(first_key, last_key, step)``, 1-based; ``(0, 0, 0)`` if keyless.

        ``last_key`` is -1 when keys continue to the end of the arguments.
        """
        fixed = [i + 1 for i, a in enumerate(self.positional) if a.kind is ArgKind.KEY]
        if any(a.kind is ArgKind.KEY for a in self.tail):
            first = fixed[0] if fixed else len(self.positional) + 1
            return first, -1, len(self.tail)
        if not fixed:
            return 0, 0, 0
        steps = {b - a for a, b in itertools.pairwise(fixed)}
        return fixed[0], fixed[-1], steps.pop() if len(steps) == 1 else 1


def _check_declaration(name: str, args: tuple[Arg, ...]) -> None:
    if name != name.upper() or name.count(" ") > 1:
        raise ValueError(f"{name!r}: names are upper case, one or two words")
    for i, arg in enumerate(args):
        last = i == len(args) - 1
        if arg.multiple and not last:
            raise ValueError(f"{name}: only the last argument may be multiple")
        if i and args[i - 1].optional and not arg.optional:
            raise ValueError(f"{name}: a required argument follows an optional one")
        if arg.multiple and any(a.optional for a in args[:i]):
            raise ValueError(f"{name}: optional singles and a multiple tail do not mix")


def key(name: str = "key", *, multiple: bool = False) -> Arg:
    return Arg(name, ArgKind.KEY, multiple=multiple)


def value(name: str = "value", *, optional: bool = False) -> Arg:
    return Arg(name, ArgKind.VALUE, optional=optional)


def token(word: str) -> Arg:
    return Arg(word, ArgKind.TOKEN)


_RO = Flag.READONLY
_W = Flag.WRITE

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    # connection
    CommandSpec("PING", "connection", "Check that the server answers.",
                (value("message", optional=True),), Flag.LOADING_OK, Reply.VALUE,
                notes="Answers the text `PONG`, or the message itself, with its type."),
    CommandSpec("ECHO", "connection", "Send back the given value.", (value("message"),),
                Flag.LOADING_OK, Reply.VALUE),
    CommandSpec("CLIENT ID", "connection", "The id of this connection.", (),
                Flag.LOADING_OK, Reply.INTEGER),
    CommandSpec("CLIENT GETNAME", "connection", "The name of this connection, or null.", (),
                Flag.LOADING_OK, Reply.VALUE),
    CommandSpec("CLIENT SETNAME", "connection", "Name this connection.",
                (Arg("name", ArgKind.TEXT),), Flag.LOADING_OK, Reply.STATUS,
                notes="Names are printable text without spaces, at most 255 characters "
                      "(the rule the handshake applies to names too); the empty text removes "
                      "the name. The handshake sets the initial name."),
    CommandSpec("CLIENT LIST", "connection", "Describe every connection.", (),
                Flag.ADMIN | Flag.LOADING_OK, Reply.LIST,
                notes="Unlike Redis's text blob, each connection is a map: `id`, `addr`, `laddr`, "
                      "`transport`, `name`, `client-id`, `hostname`, `age` and `idle` (seconds), "
                      "`cmd` (last command) and `commands` (commands run)."),
    CommandSpec("CLIENT KILL", "connection", "Close the connections with the given ids.",
                (token("ID"), Arg("id", ArgKind.INTEGER, multiple=True)),
                Flag.ADMIN | Flag.LOADING_OK, Reply.INTEGER,
                notes="Answers how many connections were closed. Each receives the push "
                      "`[2, \"kill\", reason]` after its last complete reply, then is closed. "
                      "A connection that kills itself gets this reply, then the push; the "
                      "commands it pipelined after CLIENT KILL are not run (as in Redis)."),
    # strings
    CommandSpec("SET", "string", "Set a key to a value.", (key(), value()), _W, Reply.STATUS,
                notes="The value keeps its type: `SET k 12345` then `GET k` gives the integer."),
    CommandSpec("GET", "string", "The value of a key, or null.", (key(),), _RO, Reply.VALUE),
    CommandSpec("GETSET", "string", "Set a key and return its old value.", (key(), value()),
                _W, Reply.VALUE),
    CommandSpec("MSET", "string", "Set several keys at once.",
                (Arg("data", parts=(key(), value()), multiple=True),), _W, Reply.STATUS),
    CommandSpec("MGET", "string", "The values of several keys.", (key(multiple=True),), _RO,
                Reply.LIST, notes="Missing keys and keys that are not strings give null."),
    CommandSpec("APPEND", "string", "Append text or bytes to a value; answer its new length.",
                (key(), Arg("value", ArgKind.STRING)), _W, Reply.INTEGER,
                notes="kv differs from Redis on purpose: values are typed, so APPEND applies "
                      "to text and bytes values only (an integer is not a string of digits "
                      "here: WRONGTYPE). The stored type is kept: text appended to bytes is "
                      "UTF-8 encoded; bytes appended to text must be valid UTF-8. The "
                      "length is counted as STRLEN counts it."),
    CommandSpec("STRLEN", "string", "The length of a text or bytes value.", (key(),), _RO,
                Reply.INTEGER,
                notes="Text is measured in UTF-8 bytes, as Redis measures its strings; a "
                      "missing key gives 0; values other than text and bytes answer "
                      "WRONGTYPE."),
    # keyspace
    CommandSpec("DEL", "keyspace", "Delete keys; answer how many existed.",
                (key(multiple=True),), _W, Reply.INTEGER),
    CommandSpec("EXISTS", "keyspace", "Count how many of the keys exist.",
                (key(multiple=True),), _RO, Reply.INTEGER,
                notes="A key named twice is counted twice, as in Redis."),
    CommandSpec("TYPE", "keyspace", "The type of a key: string, list, hash, or none.",
                (key(),), _RO, Reply.TEXT),
    CommandSpec("KEYS", "keyspace", "Every key matching a glob pattern.",
                (Arg("pattern", ArgKind.PATTERN),), _RO, Reply.LIST,
                notes="Text and bytes keys are distinct keys. A pattern matches both kinds: "
                      "bytes keys are matched against the pattern's UTF-8 form. Patterns follow "
                      "Redis: `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` and `\\` to escape. The "
                      "matcher never backtracks, so no pattern is slow to match."),
    CommandSpec("DBSIZE", "keyspace", "The number of keys.", (), _RO, Reply.INTEGER),
    # server
    CommandSpec("FLUSHALL", "server", "Delete every key.", (), _W | Flag.ADMIN, Reply.STATUS),
    CommandSpec("INFO", "server", "Information and statistics about the server.",
                (Arg("section", ArgKind.TEXT, optional=True, multiple=True),),
                Flag.LOADING_OK, Reply.MAP,
                notes="Answers a map of sections, each a map of fields. Without arguments, "
                      "or with `default` or `all`, every section; otherwise the named "
                      "sections (case-insensitive; unknown names are left out, as in Redis). "
                      "Sections: server, clients, memory, stats, keyspace, commandstats, "
                      "errorstats. See docs/protocol.md for the fields."),
)

BY_NAME: Final[dict[str, CommandSpec]] = {spec.name: spec for spec in COMMANDS}
CONTAINERS: Final[frozenset[str]] = frozenset(
    spec.name.split()[0] for spec in COMMANDS if " " in spec.name
)


def lookup(name: str) -> CommandSpec | None:
    """The spec for a full command name such as ``"get"`` or ``"client kill"``."""
    return BY_NAME.get(" ".join(name.upper().split()))


def resolve(argv: Sequence[object]) -> CommandSpec | None:
    """The spec for a command array, following container names to subcommands."""
    if not argv or type(argv[0]) is not str:
        return None
    name = argv[0].upper()
    if name in CONTAINERS:
        if len(argv) < 2 or type(argv[1]) is not str:
            return None
        name = f"{name} {argv[1].upper()}"
    return BY_NAME.get(name)


def arity_message(name: str) -> str:
    """Redis's wording, so that errors read the same as there."""
    return f"wrong number of arguments for '{name.lower()}' command"


def _render_keys(spec: CommandSpec) -> str:
    first, last, step = spec.key_spec
    if not first:
        return "none"
    if last == -1:
        return f"from argument {first} on, every {step}" if step > 1 else f"argument {first} on"
    return f"argument {first}" if first == last else f"arguments {first} to {last}"


def render_markdown() -> str:
    """The text of docs/commands.md."""
    lines = [
        "# Commands",
        "",
        "<!-- Generated from kv_protocol.commands by `nox -s docs`; do not edit. -->",
        "",
        "Every command kv-server knows, from the one command table. Arguments count after",
        "the command name; argument kinds are checked before a command runs (a key must be",
        "text or bytes, an integer must be an integer), and a wrong count answers",
        "`ERR wrong number of arguments`. Flags: `write` commands may change data,",
        "`readonly` commands only read it, `admin` commands act on the server or other",
        "clients, `loading-ok` commands are served while the dataset is loading.",
        "",
    ]
    groups: dict[str, list[CommandSpec]] = {}
    for spec in COMMANDS:
        groups.setdefault(spec.group, []).append(spec)
    for group, specs in groups.items():
        lines += [f"## {group}", ""]
        for spec in specs:
            flags = ", ".join(
                f.name.lower().replace("_", "-") for f in Flag if f in spec.flags and f.name
            )
            most = "any number" if spec.max_args is None else str(spec.max_args)
            kinds = ", ".join(f"{a.name}: {a.kind.value}" for a in spec.positional + spec.tail
                              if a.kind is not ArgKind.TOKEN)
            lines += [
                f"### {spec.name}",
                "",
                f"`{spec.syntax}`",
                "",
                spec.summary,
                "",
                "| | |",
                "|---|---|",
                f"| arguments | {spec.min_args} to {most} |" if spec.max_args != spec.min_args
                else f"| arguments | {spec.min_args} |",
                f"| kinds | {kinds or 'none'} |",
                f"| keys | {_render_keys(spec)} |",
                f"| flags | {flags or 'none'} |",
                f"| reply | {spec.reply.value} |",
                f"| since | {spec.since} |",
                "",
            ]
            if spec.notes:
                lines += [spec.notes, ""]
    return "\n".join(lines)
