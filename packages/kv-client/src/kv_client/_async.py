"""The async client: the sans-IO core over trio's or asyncio's streams, with a pool.

The same rules as the blocking client (``_sync.py``): one request (a command or
a pipeline) per connection at a time, a connection whose request failed or was
cancelled is closed (its reply may still arrive), and a command whose connection
broke is sent again once only if that is safe (``_core.may_retry``).

The client binds to the event loop library that first uses it; one client per
``trio.run`` or ``asyncio.run``. The connection is in ``_async_connection.py``,
pipelines and transactions in ``_async_pipeline.py`` and subscribers in
``_async_pubsub.py``.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from kv_protocol.connection import Session
from kv_protocol.values import Key

from ._async_connection import AsyncConnection
from ._async_pipeline import AsyncPipeline
from ._async_pubsub import AsyncPubSub
from ._async_streams import Backend, Semaphore, current_backend
from ._commands import refuse_connection_state
from ._commands_async import AsyncCommands
from ._commands_base import as_is
from ._config import ClientBase, ClientConfig, ClientOptions
from ._core import PING, decrypt_replies, encode_request, may_retry, request_timeout
from ._errors import ConnectionError, WatchError
from ._pool import IdleConnections
from ._recorder import Call, recorded

T = TypeVar("T")


class AsyncPool:
    """Up to ``max_connections`` connections, shared by the tasks of one event loop."""

    def __init__(self, config: ClientConfig, backend: Backend) -> None:
        self.config, self.backend = config, backend
        self._slots: Semaphore = backend.semaphore(config.max_connections)
        self._idle: IdleConnections[AsyncConnection] = IdleConnections(config.health_check_s)
        self._generation = 0
        self.last_session: Session | None = None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one request, given back after it (closed if it failed)."""
        connection, generation = await self.acquire()
        try:
            yield connection
        except BaseException:
            self.release(connection, generation, reusable=False)
            raise
        self.release(connection, generation, reusable=True)

    async def acquire(self) -> tuple[AsyncConnection, int]:
        """A connection and the pool's generation, for :meth:`release`: a transaction
        that watches keys holds one for several requests."""
        try:
            async with self.backend.deadline(self.config.pool_timeout_s):
                await self._slots.acquire()
        except builtins.TimeoutError:
            raise ConnectionError(f"all {self.config.max_connections} connections to "
                                  f"{self.config.address} stayed busy for "
                                  f"{self.config.pool_timeout_s} s") from None
        try:
            generation = self._generation
            return await self._take(), generation
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: AsyncConnection, generation: int, *, reusable: bool) -> None:
        """Give a connection back, or close it when its state is unknown (a request
        failed or was cancelled: a late reply would be taken for the next one's)."""
        try:
            if reusable:
                self.last_session = connection.core.session
                if generation == self._generation:
                    self._idle.give_back(connection)
                    return
            connection.abort()
        finally:
            self._slots.release()

    async def _take(self) -> AsyncConnection:
        taken = self._idle.take()
        if taken is not None:
            connection, stale = taken
            if not stale:
                return connection
            try:
                async with self.backend.deadline(self.config.health_check_timeout_s):
                    await connection.exchange(PING, 1)
                return connection
            except (OSError, builtins.TimeoutError, ConnectionError):
                connection.abort()
        return await AsyncConnection.open(self.config, self.backend)

    async def aclose(self) -> None:
        self._generation += 1
        for connection in self._idle.drain():
            await connection.stream.aclose()


class AsyncClient(AsyncCommands, ClientBase):
    """An async kv client for trio or asyncio, safe to share between tasks.

    Example::

        async with AsyncClient(password="secret") as kv:
            await kv.set("answer", 42)
            assert await kv.get("answer") == 42

    Takes the arguments of :class:`kv_client.Client`. Connections open on first
    use, from a pool of at most ``max_connections``.
    """

    def __init__(self, host: str | None = None, port: int | None = None,
                 **options: Unpack[ClientOptions]) -> None:
        super().__init__(host, port, **options)
        self._pool: AsyncPool | None = None

    @property
    def session(self) -> Session | None:
        """The connection id and server name of the connection used last."""
        return self._pool.last_session if self._pool else None

    def _connections(self) -> AsyncPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = AsyncPool(self.config, current_backend())
        elif not pool.backend.running():
            raise RuntimeError(f"this AsyncClient belongs to another {pool.backend.name} event "
                               "loop, now finished or elsewhere: make one client per trio.run "
                               "or asyncio.run")
        return pool

    async def connect(self) -> None:
        """Open a connection now rather than on first use (it goes to the pool)."""
        async with self._connections().connection():
            pass

    async def _send(self, result: T) -> T:
        call = recorded(result)
        [reply] = await self._request([call.args])
        converted: T = call.result(reply)
        return converted

    async def execute_command(self, *args: object) -> Any:
        """Send one command by name and return its reply untouched; an error reply raises
        (and MULTI, WATCH, SUBSCRIBE... are refused, as ``Client.execute_command`` says)."""
        refuse_connection_state(args)
        [reply] = await self._request([args])
        return Call(args, as_is).result(reply)

    execute = execute_command

    def pipeline(self, transaction: bool = False) -> AsyncPipeline:
        """A pipeline: queue commands, then send them in one write with ``await execute()``;
        with ``transaction=True``, between MULTI and EXEC."""
        return AsyncPipeline(self, transaction)

    async def transaction(self, func: Callable[[AsyncPipeline], Awaitable[object]], *watches: Key,
                          retries: int | None = None) -> list[Any]:
        """Await ``func(pipeline)`` and then its transaction, again while a watched key
        changes (see ``Client.transaction``; ``func`` awaits its reads)."""
        attempt = 0
        async with self.pipeline(transaction=True) as pipe:
            while True:
                try:
                    if watches:
                        await pipe.watch(*watches)
                    await func(pipe)
                    return await pipe.execute()
                except WatchError:
                    attempt += 1
                    if retries is not None and attempt > retries:
                        raise

    def pubsub(self) -> AsyncPubSub:
        """A subscriber on a connection of its own (see ``Client.pubsub``)."""
        return AsyncPubSub(self.config, self._connections().backend)

    async def scan_iter(self, match: str | bytes | None = None, count: int | None = None,
                        type: str | None = None) -> AsyncIterator[Key]:
        """Every key, from SCAN calls that follow the cursor until it is 0 (see ``Client.scan_iter``)."""
        cursor = 0
        while True:
            cursor, found = await self.scan(cursor, match=match, count=count, type=type)
            for key in found:
                yield key
            if cursor == 0:
                return

    async def _request(self, commands: Sequence[Sequence[object]]) -> list[object]:
        config = self.config
        return decrypt_replies(config, commands,
                               await self._exchange(commands, request_timeout(config, commands)))

    async def _exchange(self, commands: Sequence[Sequence[object]],
                        timeout_s: float | None) -> list[object]:
        """The replies to ``commands`` on a pooled connection, sent again after a broken
        connection when that is safe; not decrypted."""
        config, pool = self.config, self._connections()
        payload, count = encode_request(config, commands), len(commands)
        sent = False
        try:
            async with pool.connection() as connection:
                sent = True
                return await connection.request(payload, count, timeout_s)
        except ConnectionError:
            if not sent or not may_retry(config, commands):
                raise
            async with pool.connection() as connection:
                return await connection.request(payload, count, timeout_s)

    async def aclose(self) -> None:
        """Close the pool's connections; the next command opens a new one."""
        if self._pool is not None:
            await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
