"""What every command mixin builds on: ``execute_command`` and the option helper.

The families (``_commands_strings.py`` and its siblings) subclass
:class:`CommandsBase`, and :class:`kv_client._commands.Commands` mixes them
together; the base lives apart so that the families need not import
``_commands``, which imports them.
"""

from __future__ import annotations

import abc
from typing import Any, Literal, TypeAlias

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


class CommandsBase(abc.ABC):
    """Anything that can run a command: a client, and later a pipeline."""

    @abc.abstractmethod
    def execute_command(self, *args: object) -> Any:
        """Send one command and return its reply, raising error replies."""

    def _status(self, *args: object) -> bool:
        self.execute_command(*args)
        return True
