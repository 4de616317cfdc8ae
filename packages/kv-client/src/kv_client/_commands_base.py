"""What every command mixin builds on: ``_call``, the reply conversions and the option helper.

The families (``_commands_strings.py`` and its siblings) subclass
:class:`CommandsBase`, and :class:`kv_client._commands.Commands` mixes them
together; the base lives apart so that the families need not import
``_commands``, which imports them.

Every command method is one ``self._call(convert, *argv)``: the command array and
the function that turns its reply into the method's result. What ``_call`` does
with them is the caller's: the blocking client sends the command and converts the
reply at once; the async client and pipelines record the pair (``_recorder.py``)
and convert when the reply arrives. So a method is written once, for all three.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, TypeVar

T = TypeVar("T")

ExpireCondition: TypeAlias = Literal["NX", "XX", "GT", "LT"]
"""EXPIRE's conditions: no time to live yet, one already, a later one, an earlier one."""
End: TypeAlias = Literal["LEFT", "RIGHT"]
"""A list's head (LEFT) or tail (RIGHT), as LMOVE names them."""
Where: TypeAlias = Literal["BEFORE", "AFTER"]
"""LINSERT's side of the pivot."""


def options(*given: tuple[str, object]) -> list[object]:
    """Keyword options as the table spells them, from ``(word, argument)`` pairs.

    None and False leave an option out, True sends its word alone (a flag such as
    ``NX``), any other argument sends the word and then the argument (``EX 10``).
    Options that exclude each other are sent as given: the server refuses the
    combination with the table's wording, so the client does not repeat the rules.
    """
    argv: list[object] = []
    for word, argument in given:
        if argument is None or argument is False:
            continue
        argv.append(word)
        if argument is not True:
            argv.append(argument)
    return argv


def as_is(reply: Any) -> Any:
    """The reply itself: values keep the type they were stored with."""
    return reply


def status(reply: Any) -> bool:
    """True for a status reply such as ``OK``: an error reply would have raised."""
    return True


def not_none(reply: Any) -> bool:
    """True unless the server answered null (SET stopped by NX or XX)."""
    return reply is not None


def scan_reply(reply: Any) -> tuple[int, list[Any]]:
    """SCAN's ``[cursor, keys]`` as a typed pair."""
    cursor, found = reply
    return int(cursor), list(found)


class CommandsBase(abc.ABC):
    """Anything that can run a command: a client, a pipeline, the recorder."""

    @abc.abstractmethod
    def _call(self, convert: Callable[[Any], T], *args: object) -> T:
        """Run (or record) the command ``args``; ``convert`` makes its reply the result."""
