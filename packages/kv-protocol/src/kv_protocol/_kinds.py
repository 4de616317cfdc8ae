"""Argument kinds: what each kind accepts, and the error for a value it does not.

The server runs these checks for every argument of every command, so each kind has
a set of exact types that pass without a closer look (:data:`FAST_TYPES`) and a
full predicate for the rest (a list value, an integer that must fit 64 bits).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .errors import ArgumentTypeError, CommandSyntaxError, NotIntegerError, ServerError
from .values import MAX_VALUE_DEPTH, is_key, is_value, type_name

if TYPE_CHECKING:
    from ._spec import Arg, CommandSpec


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
    """A signed 64-bit integer (not a bool), as Redis's integer arguments are."""
    NUMBER = "number"
    """An integer or a float (not a bool)."""
    PATTERN = "pattern"
    """A glob-style pattern (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``): text or bytes."""
    TOKEN = "token"
    """The argument's own name, as a keyword; case-insensitive."""
    CHOICE = "choice"
    """One of the argument's ``choices``, as a keyword; case-insensitive."""
    OPTIONS = "options"
    """Keywords from the argument's ``options``, in any order, each at most once."""


# Checking argument kinds. Exact types first: the server runs these for every
# argument of every command, and a set lookup is the cheapest test there is.

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_SCALARS: Final[frozenset[type]] = frozenset({str, bytes, int, float, bool, type(None)})
FAST_TYPES: Final[dict[ArgKind, frozenset[type]]] = {
    ArgKind.KEY: frozenset({str, bytes}),
    ArgKind.VALUE: _SCALARS,
    ArgKind.STRING: frozenset({str, bytes}),
    ArgKind.TEXT: frozenset({str}),
    ArgKind.INTEGER: frozenset(),  # an int must also be in range: always the closer look
    ArgKind.NUMBER: frozenset({int, float}),
    ArgKind.PATTERN: frozenset({str, bytes}),
    ArgKind.TOKEN: frozenset(),
    ArgKind.CHOICE: frozenset(),
    ArgKind.OPTIONS: frozenset(),
}
"""Types that satisfy a kind without a closer look (a list value, a token need one)."""


def _is_string(obj: object) -> bool:
    return type(obj) is str or type(obj) is bytes


_PREDICATES: Final[dict[ArgKind, Callable[[object], bool]]] = {
    ArgKind.KEY: is_key,
    ArgKind.VALUE: is_value,
    ArgKind.STRING: _is_string,
    ArgKind.TEXT: lambda obj: type(obj) is str,
    ArgKind.INTEGER: lambda obj: type(obj) is int and INT64_MIN <= obj <= INT64_MAX,
    ArgKind.NUMBER: lambda obj: type(obj) is int or type(obj) is float,
    ArgKind.PATTERN: _is_string,
}
_EXPECTED: Final = {
    ArgKind.KEY: "text or bytes",
    ArgKind.VALUE: ("a storable value (null, bool, int, float, text, bytes, list, map; "
                    f"nested at most {MAX_VALUE_DEPTH} deep)"),
    ArgKind.STRING: "text or bytes",
    ArgKind.TEXT: "text",
    ArgKind.NUMBER: "an integer or a float",
    ArgKind.PATTERN: "text or bytes",
}


def predicate(arg: Arg) -> Callable[[object], bool]:
    """The full test of an argument's kind."""
    if arg.kind is ArgKind.TOKEN:
        word = arg.name.upper()
        return lambda obj: type(obj) is str and obj.upper() == word
    if arg.kind is ArgKind.CHOICE:
        words = frozenset(arg.choices)
        return lambda obj: type(obj) is str and obj.upper() in words
    if arg.kind is ArgKind.OPTIONS:
        return lambda obj: True  # checked by CommandSpec.parse_options
    return _PREDICATES[arg.kind]


def accepts(kind: ArgKind, obj: object) -> bool:
    """Whether ``obj`` is of ``kind`` (not for tokens and choices, which need their Arg)."""
    return type(obj) in FAST_TYPES[kind] or _PREDICATES[kind](obj)


def argument_error(spec: CommandSpec, arg: Arg, obj: object) -> ServerError:
    """The error for an argument of the wrong kind."""
    where = f"'{spec.name.lower()}' argument '{arg.name}'"
    if arg.kind is ArgKind.TOKEN:
        return CommandSyntaxError(f"{where} must be the word {arg.name.upper()}")
    if arg.kind is ArgKind.CHOICE:
        return CommandSyntaxError(f"{where} must be one of {', '.join(arg.choices)}")
    if arg.kind is ArgKind.INTEGER:
        got = "an integer out of range" if type(obj) is int else type_name(obj)
        return NotIntegerError(f"{where} must be a 64-bit integer, got {got}")
    return ArgumentTypeError(f"{where} must be {_EXPECTED[arg.kind]}, got {type_name(obj)}")
