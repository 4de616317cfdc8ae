"""The one command table.

Every command kv knows is one :class:`CommandSpec` in :data:`COMMANDS`, declared in
the ``_table_*`` module of its family. The server dispatches from it (arity, argument
kinds, flags), the client's methods and the CLI's ``--commands`` listing are checked
against it, the AOF will log the commands flagged ``WRITE``, and
``docs/commands.md`` is :func:`render_markdown`'s output. Nothing else lists
commands. How a command is declared, and what is derived from the declaration, is
in :mod:`kv_protocol._spec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from . import (
    _table_connection,
    _table_hashes,
    _table_keys,
    _table_lists,
    _table_persistence,
    _table_pubsub,
    _table_strings,
    _table_transactions,
)
from ._kinds import FAST_TYPES, ArgKind, accepts, argument_error, predicate
from ._spec import (
    Arg,
    CommandSpec,
    Flag,
    Option,
    Reply,
    choice,
    integer,
    key,
    options,
    token,
    value,
)

__all__ = [
    "BY_NAME",
    "FAST_TYPES",
    "COMMANDS",
    "CONTAINERS",
    "Arg",
    "ArgKind",
    "CommandSpec",
    "Flag",
    "Option",
    "Reply",
    "accepts",
    "argument_error",
    "arity_message",
    "choice",
    "integer",
    "key",
    "lookup",
    "options",
    "predicate",
    "render_markdown",
    "resolve",
    "token",
    "value",
]

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    *_table_connection.COMMANDS,
    *_table_strings.COMMANDS,
    *_table_keys.COMMANDS,
    *_table_lists.COMMANDS,
    *_table_hashes.COMMANDS,
    *_table_persistence.COMMANDS,
    *_table_transactions.COMMANDS,
    *_table_pubsub.COMMANDS,
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
    if last < 0:
        return f"argument {first} to the last but {-1 - last}"
    return f"argument {first}" if first == last else f"arguments {first} to {last}"


def _render_arity(spec: CommandSpec) -> str:
    if spec.options is not None:
        return f"| arguments | {spec.min_args}, then options |"
    if spec.max_args == spec.min_args:
        return f"| arguments | {spec.min_args} |"
    most = "any number" if spec.max_args is None else str(spec.max_args)
    return f"| arguments | {spec.min_args} to {most} |"


def _option_args(spec: CommandSpec) -> tuple[Arg, ...]:
    if spec.options is None:
        return ()
    return tuple(option.arg for option in spec.options.options if option.arg is not None)


def render_markdown() -> str:
    """The text of docs/commands.md."""
    lines = [
        "# Commands",
        "",
        "<!-- Generated from kv_protocol.commands by `nox -s docs`; do not edit. -->",
        "",
        "Every command kv-server knows, from the one command table. Arguments count after",
        "the command name; argument kinds are checked before a command runs (a key must be",
        "text or bytes, an integer a signed 64-bit integer), and a wrong count answers",
        "`ERR wrong number of arguments`. Flags: `write` commands may change data,",
        "`readonly` commands only read it, `admin` commands act on the server or other",
        "clients, `loading-ok` commands are served while the dataset is loading.",
        "",
        "kv follows Redis's semantics (negative indices, clamped ranges, counts, return",
        "values, lists and hashes deleted when emptied, which writes keep a time to live)",
        "except where typed values change things; each command's notes say where. The",
        "general rules: a value keeps its type, so commands that treat a string as a number",
        "(INCR) or as bytes (APPEND, SETRANGE) need a value of that type; values compare",
        "with their types (1, 1.0, `\"1\"` and true are four different values); floats are",
        "64-bit (Redis's INCRBYFLOAT uses long double); errors carry a code (see",
        "docs/protocol.md) rather than Redis's message prefix. Keyword options come in any",
        "order, each at most once, and options in one bracket exclude each other (`EX` and",
        "`PX`): anything else answers SYNTAX, where Redis lets some repeats pass.",
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
            declared = spec.positional + spec.tail + spec.trailing + _option_args(spec)
            kinds = ", ".join(f"{a.name}: {a.kind.value}" for a in declared
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
                _render_arity(spec),
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
