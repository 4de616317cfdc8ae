"""Pipelines: many commands in one write, their replies in one read.

A pipeline queues the calls its command methods record (``_recorder.py``) and
sends them together when executed; the replies come back in order and each is
converted as its blocking method would convert it. This module holds what the
sync and async pipelines share; each adds ``execute`` for its own client.

Error handling: a command's error reply does not stop the others (the server
runs every queued command). ``execute()`` raises the first error after every
reply has arrived, so the connection stays usable;
``execute(raise_on_error=False)`` returns the error instances in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from kv_protocol.errors import KvError

from ._commands_base import as_is
from ._commands_pipeline import PipelineCommands
from ._recorder import Call, recorded


class PipelineBase(PipelineCommands):
    """The queue of a pipeline."""

    def __init__(self) -> None:
        self._calls: list[Call] = []

    def _queue(self, result: object) -> Self:
        self._calls.append(recorded(result))
        return self

    def execute_command(self, *args: object) -> Self:
        """Queue any command by name; its reply is returned untouched."""
        self._calls.append(Call(args, as_is))
        return self

    def __len__(self) -> int:
        return len(self._calls)

    def _take(self) -> list[Call]:
        calls, self._calls = self._calls, []
        return calls

    def reset(self) -> None:
        """Forget the queued commands without sending them."""
        self._calls.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.reset()


def results(calls: Sequence[Call], replies: Sequence[object], raise_on_error: bool) -> list[Any]:
    """Each call's result, in order (error replies raised or kept as instances)."""
    converted: list[Any] = []
    first_error: KvError | None = None
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, KvError):
            first_error = first_error or reply
            converted.append(reply)
        else:
            converted.append(call.convert(reply))
    if first_error is not None and raise_on_error:
        raise first_error
    return converted
