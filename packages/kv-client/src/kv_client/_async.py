"""The async client: the sans-IO core over trio's or asyncio's streams, with a pool.

The same rules as the blocking client (``_sync.py``): one request (a command or
a pipeline) per connection at a time, a connection whose request failed or was
cancelled is closed (its reply may still arrive), and a command whose connection
broke is sent again once only if that is safe (``_core.may_retry``).

The client binds to the event loop library that first uses it; one client per
``trio.run`` or ``asyncio.run``.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from kv_protocol.connection import Session
from kv_protocol.values import Key

from ._async_streams import Backend, Semaphore, Stream, current_backend
from ._commands_async import AsyncCommands
from ._commands_base import as_is
from ._config import ClientBase, ClientConfig, ClientOptions
from ._core import PING, ClientCore, decrypt_replies, encode_request, may_retry
from ._errors import ConnectionError, TimeoutError
from ._pipeline import PipelineBase, results
from ._pool import IdleConnections
from ._recorder import Call, recorded

T = TypeVar("T")


class AsyncConnection:
    """One authenticated stream."""

    def __init__(self, core: ClientCore, stream: Stream, backend: Backend) -> None:
        self.core, self.stream, self.backend = core, stream, backend

    @classmethod
    async def open(cls, config: ClientConfig, backend: Backend) -> AsyncConnection:
        core = ClientCore(config)
        try:
            async with backend.deadline(config.connect_timeout_s):
                stream = await backend.connect(config)
        except builtins.TimeoutError:
            raise TimeoutError(f"cannot connect to {config.address} within "
                               f"{config.connect_timeout_s} s") from None
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {config.address}: {exc}") from exc
        try:
            async with backend.deadline(config.connect_timeout_s):
                await stream.send_all(core.data_to_send())
                while not core.receive_handshake(await stream.receive_some()):
                    if out := core.data_to_send():
                        await stream.send_all(out)
        except BaseException as exc:
            stream.abort()
            if isinstance(exc, builtins.TimeoutError) and not isinstance(exc, TimeoutError):
                raise TimeoutError(f"no handshake reply from {config.address}") from None
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
                raise ConnectionError(f"handshake with {config.address} failed: {exc}") from exc
            raise
        return cls(core, stream, backend)

    async def request(self, payload: bytes, count: int) -> list[object]:
        """Send ``payload`` (``count`` commands) and return their replies."""
        config = self.core.config
        try:
            if config.timeout_s is None:
                return await self.exchange(payload, count)
            async with self.backend.deadline(config.timeout_s):
                return await self.exchange(payload, count)
        except ConnectionError:
            raise
        except builtins.TimeoutError:
            raise TimeoutError(f"no reply from {config.address} within "
                               f"{config.timeout_s} s") from None
        except OSError as exc:
            raise ConnectionError(f"connection to {config.address} broke: {exc}") from exc

    async def exchange(self, payload: bytes, count: int) -> list[object]:
        """The request without a deadline or error mapping: the caller's."""
        core, stream = self.core, self.stream
        await stream.send_all(payload)
        replies: list[object] = []
        while len(replies) < count:
            replies += core.receive_replies(await stream.receive_some())
        return replies

    def fileno(self) -> int:
        return self.stream.fileno()

    def abort(self) -> None:
        self.stream.abort()


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
        try:
            async with self.backend.deadline(self.config.pool_timeout_s):
                await self._slots.acquire()
        except builtins.TimeoutError:
            raise ConnectionError(f"all {self.config.max_connections} connections to "
                                  f"{self.config.address} stayed busy for "
                                  f"{self.config.pool_timeout_s} s") from None
        try:
            generation = self._generation
            connection = await self._take()
            try:
                yield connection
            except BaseException:
                connection.abort()
                raise
            self.last_session = connection.core.session
            if generation == self._generation:
                self._idle.give_back(connection)
            else:
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


class AsyncPipeline(PipelineBase):
    """Commands queued on an :class:`AsyncClient`, sent together by :meth:`execute`.

    Example::

        async with kv.pipeline() as p:
            p.set("a", 1).incr("a").get("a")
            assert await p.execute() == [True, 2, 2]
    """

    def __init__(self, client: AsyncClient) -> None:
        super().__init__()
        self._client = client

    async def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands in one write; their results, in order."""
        calls = self._take()
        if not calls:
            return []
        replies = await self._client._request([call.args for call in calls])
        return results(calls, replies, raise_on_error)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.reset()


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
        """Send one command by name and return its reply untouched; an error reply raises."""
        [reply] = await self._request([args])
        return Call(args, as_is).result(reply)

    execute = execute_command

    def pipeline(self) -> AsyncPipeline:
        """A pipeline: queue commands, then send them in one write with ``await execute()``."""
        return AsyncPipeline(self)

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
        config, pool = self.config, self._connections()
        payload, count = encode_request(config, commands), len(commands)
        sent = False
        try:
            async with pool.connection() as connection:
                sent = True
                replies = await connection.request(payload, count)
        except ConnectionError:
            if not sent or not may_retry(config, commands):
                raise
            async with pool.connection() as connection:
                replies = await connection.request(payload, count)
        return decrypt_replies(config, commands, replies)

    async def aclose(self) -> None:
        """Close the pool's connections; the next command opens a new one."""
        if self._pool is not None:
            await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
