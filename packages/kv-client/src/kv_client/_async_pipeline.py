"""The async client's pipeline: plain, transactional, and watching (see ``_pipeline.py``).

The blocking pipeline's rules (``_sync_pipeline.py``) hold here: a watching
pipeline holds one pooled connection until ``execute()``, ``unwatch()`` or
``reset()``, and gives it back clean or closes it. While watching, each method
returns an awaitable of its result: ``value = await pipe.get("k")``, as in
redis-py's asyncio pipelines. Leaving the ``async with`` block because of an
exception (a cancellation among them) closes a watching connection instead of
sending UNWATCH, so that cancelling never waits for the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from kv_protocol.errors import KvError, LocalProtocolError
from kv_protocol.values import Key

from ._commands_async import AsyncCommands
from ._core import decrypt_replies, encode_request, request_timeout
from ._errors import ConnectionError, TimeoutError
from ._pipeline import PipelineBase, results
from ._recorder import Call, recorded
from ._transaction import exec_results, transaction_commands

if TYPE_CHECKING:
    from ._async import AsyncClient, AsyncPool
    from ._async_connection import AsyncConnection

UNWATCH: Final = ("UNWATCH",)
T = TypeVar("T")


class AsyncPipeline(PipelineBase):
    """Commands queued on an :class:`AsyncClient`, sent together by :meth:`execute`.

    Example::

        async with kv.pipeline() as p:
            p.set("a", 1).incr("a").get("a")
            assert await p.execute() == [True, 2, 2]

        async with kv.pipeline(transaction=True) as p:      # MULTI ... EXEC
            await p.watch("a")
            value = await p.immediate.get("a")              # at once, while watching
            p.multi()
            p.set("a", value + 1)
            assert await p.execute() == [True]              # or WatchError
    """

    def __init__(self, client: AsyncClient, transaction: bool = False) -> None:
        super().__init__(transaction)
        self._client = client
        self._held: tuple[AsyncConnection, int, AsyncPool] | None = None

    async def watch(self, *keys: Key) -> bool:
        """Make the transaction depend on ``keys`` staying unchanged until EXEC (see
        ``Pipeline.watch``); the pipeline holds one connection from now on."""
        self._check_watch()
        if self._held is None:
            pool = self._client._connections()
            self._held = (*await pool.acquire(), pool)
        [reply] = await self._on_held([("WATCH", *keys)], self._client.config.timeout_s)
        if isinstance(reply, KvError):
            if not self.watching:  # nothing to hold the connection for
                self._give_back(reusable=True)
            raise reply
        self.watching = True
        return True

    async def unwatch(self) -> bool:
        """Forget the watched keys (UNWATCH) and give the connection back."""
        await self.reset()
        return True

    @property
    def immediate(self) -> AsyncCommands:
        """The command methods, run at once on the connection :meth:`watch` holds and
        typed as the client's: ``value = await pipe.immediate.get("k")``.

        Raises:
            LocalProtocolError: no connection is held (call :meth:`watch` first).
        """
        if self._held is None:
            raise LocalProtocolError("no connection is held: call watch() first")
        return _Immediate(self)

    def _run_held(self, call: Call) -> Any:
        return self._run_now(call)

    async def _run_now(self, call: Call) -> Any:
        commands = [call.args]
        replies = await self._on_held(commands, request_timeout(self._client.config, commands))
        return call.result(decrypt_replies(self._client.config, commands, replies)[0])

    async def _on_held(self, commands: Sequence[Sequence[object]],
                        timeout_s: float | None) -> list[object]:
        """Send ``commands`` on the held connection; a failure closes it and resets."""
        assert self._held is not None
        payload = encode_request(self._client.config, commands)
        try:
            return await self._held[0].request(payload, len(commands), timeout_s)
        except BaseException:
            self._give_back(reusable=False)
            self._clear()
            raise

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands in one write; their results, in order (see
        ``Pipeline.execute``: a transaction's raise WatchError or ExecAbortError)."""
        calls = self._take()
        try:
            if not self.in_transaction:
                return results(calls, await self._client._request([call.args for call in calls]),
                               raise_on_error) if calls else []
            if not calls and not self.watching:
                return []
            commands = transaction_commands(calls)
            if self._held is None:
                replies = await self._client._exchange(commands, self._client.config.timeout_s)
            else:
                replies = await self._on_held(commands, self._client.config.timeout_s)
            self.watching = False  # EXEC answered: the server unwatched every key
            return exec_results(self._client.config, calls, replies, raise_on_error)
        finally:
            await self.reset()

    async def reset(self) -> None:
        """Forget the queued commands and the watched keys; give the connection back."""
        if self._held is not None and self.watching:
            try:
                [reply] = await self._on_held([UNWATCH], self._client.config.timeout_s)
            except (ConnectionError, TimeoutError):
                return  # the connection is closed, which unwatches too
            self._give_back(reusable=not isinstance(reply, KvError))
        self._give_back(reusable=True)
        self._clear()

    def _give_back(self, *, reusable: bool) -> None:
        if self._held is not None:
            connection, generation, pool = self._held
            self._held = None
            pool.release(connection, generation, reusable=reusable)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if kind is not None:
            self._give_back(reusable=not self.watching)
            self._clear()
        await self.reset()


class _Immediate(AsyncCommands):
    """A watching pipeline's command methods, run at once, with the client's types."""

    def __init__(self, pipeline: AsyncPipeline) -> None:
        self._pipeline = pipeline

    async def _send(self, result: T) -> T:
        converted: T = await self._pipeline._run_now(recorded(result))
        return converted
