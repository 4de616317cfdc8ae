"""Pipelines: many commands in one write, their replies in one read; and transactions.

A pipeline queues the calls its command methods record (``_recorder.py``) and
sends them together when executed; the replies come back in order and each is
converted as its blocking method would convert it. This module holds what the
sync and async pipelines share; each adds the I/O for its own client.

Modes, as redis-py's pipelines have them:

- buffering (the default): methods queue and return the pipeline, so calls chain;
  ``execute()`` sends the queue, wrapped in MULTI/EXEC when the pipeline was made
  with ``transaction=True`` or ``multi()`` was called (``_transaction.py``);
- watching: after ``watch(*keys)`` the pipeline holds one connection, and methods
  run at once and return their results (the value the code reads to decide what
  to write), until ``multi()`` turns buffering back on. ``execute()`` then sends
  MULTI/EXEC on that connection, and a watched key's change raises WatchError.
  Statically those methods still return the pipeline; ``pipeline.immediate`` has
  the same methods typed as the client's, for code that mypy checks.

Error handling: a command's error reply does not stop the others (the server
runs every queued command). ``execute()`` raises the first error after every
reply has arrived, so the connection stays usable;
``execute(raise_on_error=False)`` returns the error instances in place. Using a
pipeline out of order (``multi()`` twice, ``watch()`` after ``multi()``) raises
:class:`LocalProtocolError` before anything is sent.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Self

from kv_protocol.errors import KvError, LocalProtocolError

from ._commands import refuse_connection_state
from ._commands_base import as_is
from ._commands_pipeline import PipelineCommands
from ._recorder import Call, recorded


class PipelineBase(PipelineCommands):
    """The queue of a pipeline and its mode; the shells hold the connection."""

    def __init__(self, transaction: bool = False) -> None:
        self._calls: list[Call] = []
        self.transaction = transaction
        """Whether ``execute()`` wraps the queue in MULTI/EXEC."""
        self.watching = False
        """Whether WATCH ran: methods then run at once, until ``multi()``."""
        self._multi = False

    @abc.abstractmethod
    def _run_held(self, call: Call) -> Any:
        """Run ``call`` now on the held connection: its result (async: an awaitable)."""

    def _queue(self, result: object) -> Self:
        return self._add(recorded(result))

    def execute_command(self, *args: object) -> Self:
        """Queue any command by name (run it at once while watching); its reply is
        returned untouched.

        Raises:
            LocalProtocolError: MULTI, WATCH, SUBSCRIBE and the other commands that
                change their connection's state: the pipeline sends those itself
                (``transaction=True``, :meth:`multi`, ``watch``), and a pooled
                connection left subscribing or queueing would mislead its next user.
        """
        refuse_connection_state(args)
        return self._add(Call(args, as_is))

    def _add(self, call: Call) -> Self:
        if self.watching and not self._multi:
            # The result, typed as the pipeline that buffering returns: the price of
            # redis-py's one object for both modes (``immediate`` is typed right).
            result: Self = self._run_held(call)
            return result
        self._calls.append(call)
        return self

    def multi(self) -> None:
        """Start the transaction: commands are queued from now on, and ``execute()``
        sends them between MULTI and EXEC.

        Raises:
            LocalProtocolError: ``multi()`` was already called, or commands were
                queued before it (they would run inside the transaction unawares).
        """
        if self._multi:
            raise LocalProtocolError("cannot call multi() twice: the transaction has begun")
        if self._calls:
            raise LocalProtocolError("cannot call multi() after commands were queued: call it "
                                     "first, or make the pipeline with transaction=True")
        self._multi = True

    @property
    def in_transaction(self) -> bool:
        """Whether ``execute()`` will send MULTI/EXEC."""
        return self.transaction or self._multi

    def _check_watch(self) -> None:
        if self._multi:
            raise LocalProtocolError("cannot WATCH after multi(): the server refuses WATCH "
                                     "inside MULTI")
        if self._calls:
            raise LocalProtocolError("cannot WATCH with commands queued: watch first, then "
                                     "read, then multi()")

    def __len__(self) -> int:
        return len(self._calls)

    def _take(self) -> list[Call]:
        calls, self._calls = self._calls, []
        return calls

    def _clear(self) -> None:
        """Back to an empty buffering pipeline (the shells give back the connection)."""
        self._calls.clear()
        self.watching = self._multi = False


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
