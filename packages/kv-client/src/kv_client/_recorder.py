"""Recording a command method's call instead of running it.

The async client and pipelines reuse the blocking command methods as they are:
each method is one ``self._call(convert, *argv)``, and :data:`RECORDER`'s
``_call`` returns that pair as a :class:`Call` rather than running it. The
generated async and pipeline methods (``_commands_async.py``,
``_commands_pipeline.py``) call ``RECORDER.method(...)`` with their own
arguments and send or queue the :class:`Call`, so argument handling, options and
reply conversion exist once, in the ``_commands_*`` mixins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from kv_protocol.errors import KvError

from ._commands import Commands

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One command array and the conversion of its reply into a method's result."""

    args: tuple[object, ...]
    convert: Callable[[Any], Any]

    def result(self, reply: object) -> Any:
        """The method's result; an error reply is raised (a value can never be one)."""
        if isinstance(reply, KvError):
            raise reply
        return self.convert(reply)


class Recorder(Commands):
    """The command methods, answering each call with its :class:`Call`."""

    def _call(self, convert: Callable[[Any], T], *args: object) -> T:
        # The lie is contained: every caller of RECORDER treats the result as a Call.
        return cast(T, Call(args, convert))


RECORDER: Final = Recorder()


def recorded(result: object) -> Call:
    """The :class:`Call` that a ``RECORDER`` method returned under its declared type."""
    assert type(result) is Call, f"{result!r} is not a recorded call"
    return result
