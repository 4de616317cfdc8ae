"""Transactions without I/O: the MULTI/EXEC request and the reading of EXEC's answer.

A transaction is one request, ``MULTI``, the queued commands, ``EXEC``, sent in one
write (as redis-py's transaction pipelines do), so no other command of ours can
land between them and the connection is never left inside MULTI: whatever EXEC
answers, the transaction is over and the server has unwatched every key.

Reading the replies, in order:

- MULTI answers OK; an error there (a refused login...) is raised as it is;
- each queued command answers ``QUEUED``, or the error that refused it, in which
  case EXEC answers EXECABORT: that is raised, chained to the first refusal
  (``raise_on_error`` keeps run-time errors only, since nothing ran);
- EXEC answers null when a watched key changed: :class:`WatchError`;
- otherwise a list with one envelope per queued command, ``[0, value]`` or
  ``[1, code, message]``, decoded as a wire message is and converted by each
  command's method, exactly as a pipeline's replies are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from kv_protocol.errors import KvError, RemoteProtocolError
from kv_protocol.messages import PUSH, decode_message

from ._config import ClientConfig
from ._core import decrypt_replies
from ._errors import WatchError
from ._pipeline import results
from ._recorder import Call

MULTI: Final = ("MULTI",)
EXEC: Final = ("EXEC",)


def transaction_commands(calls: Sequence[Call]) -> list[Sequence[object]]:
    """The request of a transaction: MULTI, the queued commands, EXEC."""
    return [MULTI, *(call.args for call in calls), EXEC]


def exec_results(config: ClientConfig, calls: Sequence[Call], replies: Sequence[object],
                 raise_on_error: bool) -> list[Any]:
    """The queued calls' results from the replies to :func:`transaction_commands`.

    Raises:
        WatchError: a watched key changed, so nothing ran.
        ExecAbortError: the server refused a command while queueing, so nothing ran;
            its ``__cause__`` is the first refusal.
        KvError: with ``raise_on_error``, the first command's error, the others
            having run (as in Redis, a transaction does not roll back).
        RemoteProtocolError: EXEC's answer does not hold one envelope per command.
    """
    multi, *queued, answer = replies
    if isinstance(multi, KvError):
        raise multi
    if answer is None:
        raise WatchError("a watched key changed before EXEC, so the transaction did not run")
    if isinstance(answer, KvError):
        raise answer from next((reply for reply in queued if isinstance(reply, KvError)), None)
    if type(answer) is not list or len(answer) != len(calls):
        raise RemoteProtocolError(f"EXEC answered {answer!r} for {len(calls)} queued commands")
    values: list[object] = []
    for envelope in answer:
        kind, value = decode_message(envelope)
        if kind == PUSH:
            raise RemoteProtocolError(f"EXEC's answer holds a push: {envelope!r}")
        values.append(value)
    return results(calls, decrypt_replies(config, [call.args for call in calls], values),
                   raise_on_error)
