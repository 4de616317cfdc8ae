"""The blocking client's pipeline: plain, transactional, and watching (see ``_pipeline.py``).

Connections: a plain or transactional pipeline borrows a pooled connection for the
length of ``execute()``, as one command does. ``watch()`` makes it hold one until
``execute()``, ``unwatch()`` or ``reset()`` (leaving the ``with`` block), since the
WATCH and the EXEC it guards must share a connection. It is given back clean: EXEC
ends the transaction and unwatches every key, and otherwise UNWATCH is sent first.
A connection whose request failed, was interrupted, or whose UNWATCH was refused
is closed instead, since its state is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from kv_protocol.errors import KvError, LocalProtocolError
from kv_protocol.values import Key

from ._commands import Commands
from ._core import decrypt_replies, encode_request, request_timeout
from ._errors import ConnectionError, TimeoutError
from ._pipeline import PipelineBase, results
from ._recorder import Call
from ._transaction import exec_results, transaction_commands

if TYPE_CHECKING:
    from ._sync import Client
    from ._sync_connection import SyncConnection

UNWATCH: Final = ("UNWATCH",)
T = TypeVar("T")


class Pipeline(PipelineBase):
    """Commands queued on a :class:`Client`, sent together by :meth:`execute`.

    Example::

        with kv.pipeline() as p:
            p.set("a", 1).incr("a").get("a")
            assert p.execute() == [True, 2, 2]

        with kv.pipeline(transaction=True) as p:     # MULTI ... EXEC
            p.incr("a").incr("b")
            assert p.execute() == [3, 1]

    Optimistic locking, as with redis-py: ``watch(*keys)``, then read (while watching,
    methods run at once and return their results; ``immediate`` offers them with
    the client's types), then ``multi()``, then queue the writes; ``execute()``
    raises :class:`WatchError` when a watched key changed in between, and nothing
    was written. ``Client.transaction`` retries for you.
    """

    def __init__(self, client: Client, transaction: bool = False) -> None:
        super().__init__(transaction)
        self._client = client
        self._held: tuple[SyncConnection, int] | None = None

    def watch(self, *keys: Key) -> bool:
        """Make the transaction depend on ``keys`` staying unchanged until EXEC.

        The pipeline holds one connection from now on, and its methods run at once
        until :meth:`multi`.

        Raises:
            LocalProtocolError: after ``multi()``, or with commands queued.
        """
        self._check_watch()
        if self._held is None:
            self._held = self._client._pool.acquire()
        [reply] = self._on_held([("WATCH", *keys)], self._client.config.timeout_s)
        if isinstance(reply, KvError):
            if not self.watching:  # nothing to hold the connection for
                self._give_back(reusable=True)
            raise reply
        self.watching = True
        return True

    def unwatch(self) -> bool:
        """Forget the watched keys (UNWATCH) and give the connection back."""
        self.reset()
        return True

    @property
    def immediate(self) -> Commands:
        """The command methods, run at once on the connection :meth:`watch` holds and
        typed as the client's: ``value = pipe.immediate.get("k")``.

        Raises:
            LocalProtocolError: no connection is held (call :meth:`watch` first).
        """
        if self._held is None:
            raise LocalProtocolError("no connection is held: call watch() first")
        return _Immediate(self)

    def _run_held(self, call: Call) -> Any:
        commands, config = [call.args], self._client.config
        replies = self._on_held(commands, request_timeout(config, commands))
        return call.result(decrypt_replies(config, commands, replies)[0])

    def _on_held(self, commands: Sequence[Sequence[object]],
                  timeout_s: float | None) -> list[object]:
        """Send ``commands`` on the held connection; a failure closes it and resets."""
        assert self._held is not None
        payload = encode_request(self._client.config, commands)
        try:
            return self._held[0].request(payload, len(commands), timeout_s)
        except BaseException:
            self._give_back(reusable=False)
            self._clear()
            raise

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands in one write; their results, in order.

        In a transaction (``transaction=True`` or after ``multi()``) they are sent
        between MULTI and EXEC, and their results are EXEC's.

        Raises:
            WatchError: a watched key changed, so the transaction did not run.
            ExecAbortError: the server refused a queued command, so none ran.
            KvError: with ``raise_on_error``, the first command's error.

        Either way the pipeline is empty afterwards and has given its connection back.
        """
        calls = self._take()
        try:
            if not self.in_transaction:
                return results(calls, self._client._request([call.args for call in calls]),
                               raise_on_error) if calls else []
            if not calls and not self.watching:
                return []
            commands = transaction_commands(calls)
            if self._held is None:
                replies = self._client._exchange(commands, self._client.config.timeout_s)
            else:
                replies = self._on_held(commands, self._client.config.timeout_s)
            self.watching = False  # EXEC answered: the server unwatched every key
            return exec_results(self._client.config, calls, replies, raise_on_error)
        finally:
            self.reset()

    def reset(self) -> None:
        """Forget the queued commands and the watched keys; give the connection back."""
        if self._held is not None and self.watching:
            try:
                [reply] = self._on_held([UNWATCH], self._client.config.timeout_s)
            except (ConnectionError, TimeoutError):
                return  # the connection is closed, which unwatches too
            self._give_back(reusable=not isinstance(reply, KvError))
        self._give_back(reusable=True)
        self._clear()

    def _give_back(self, *, reusable: bool) -> None:
        if self._held is not None:
            connection, generation = self._held
            self._held = None
            self._client._pool.release(connection, generation, reusable=reusable)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.reset()


class _Immediate(Commands):
    """A watching pipeline's command methods, run at once, with the client's types."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def _call(self, convert: Callable[[Any], T], *args: object) -> T:
        result: T = self._pipeline._run_held(Call(args, convert))
        return result
