"""The async client's two thin transports: trio's streams and asyncio's.

The async client runs under either library, found with sniffio when it first
connects. Each transport does only I/O (open, send, receive, close, a deadline,
a semaphore); the handshake, framing and replies are the sans-IO core's, as in
the blocking client. Two thin shells cost less than a portability layer (anyio)
on every send and receive, and the core keeps them small.

Errors: a transport raises ``OSError`` when the connection breaks or cannot be
opened (trio's ``BrokenResourceError`` included), and the built-in
``TimeoutError`` when a deadline passes; the client maps those to its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

import sniffio

from ._config import ClientConfig
from ._core import RECEIVE_BYTES

if TYPE_CHECKING:
    import trio


class Stream(Protocol):
    async def send_all(self, data: bytes) -> None: ...
    async def receive_some(self) -> bytes: ...
    async def aclose(self) -> None: ...
    def fileno(self) -> int: ...
    def abort(self) -> None: ...


class Semaphore(Protocol):
    async def acquire(self) -> object: ...
    def release(self) -> None: ...


class Backend(Protocol):
    """What the async client needs from an event loop library."""

    name: str

    async def connect(self, config: ClientConfig) -> Stream: ...
    def semaphore(self, value: int) -> Semaphore: ...
    def deadline(self, seconds: float | None) -> contextlib.AbstractAsyncContextManager[None]: ...


def current_backend() -> Backend:
    """The transport for the running event loop.

    Raises:
        RuntimeError: not inside trio or asyncio.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        return TrioBackend()
    if library == "asyncio":
        return AsyncioBackend()
    raise RuntimeError(f"kv_client.AsyncClient runs under trio or asyncio, not {library}")


class TrioStream:
    def __init__(self, stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream
        self._socket = stream.transport_stream.socket if hasattr(stream, "transport_stream") \
            else stream.socket

    async def send_all(self, data: bytes) -> None:
        import trio
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise OSError(str(exc) or type(exc).__name__) from exc

    async def receive_some(self) -> bytes:
        import trio
        try:
            return bytes(await self._stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise OSError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        import trio
        await trio.aclose_forcefully(self._stream)

    def fileno(self) -> int:
        return self._socket.fileno()

    def abort(self) -> None:
        self._socket.close()


class TrioBackend:
    name = "trio"

    async def connect(self, config: ClientConfig) -> Stream:
        import trio
        if config.unix_path is not None:
            return TrioStream(await trio.open_unix_socket(str(config.unix_path)))
        stream = await trio.open_tcp_stream(config.host, config.port)
        if config.ssl is None:
            return TrioStream(stream)
        tls = trio.SSLStream(stream, config.ssl, server_hostname=config.server_hostname or config.host)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(stream)
            raise OSError(f"TLS handshake failed: {exc.__cause__ or exc}") from exc
        return TrioStream(tls)

    def semaphore(self, value: int) -> Semaphore:
        import trio
        return trio.Semaphore(value)

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None) -> AsyncIterator[None]:
        import trio
        if seconds is None:
            yield
            return
        try:
            with trio.fail_after(seconds):
                yield
        except trio.TooSlowError:
            raise TimeoutError from None


class AsyncioStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def send_all(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def receive_some(self) -> bytes:
        return await self._reader.read(RECEIVE_BYTES)

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def fileno(self) -> int:
        sock = self._writer.get_extra_info("socket")
        return -1 if sock is None else int(sock.fileno())

    def abort(self) -> None:
        self._writer.transport.abort()


class AsyncioBackend:
    name = "asyncio"

    async def connect(self, config: ClientConfig) -> Stream:
        if config.unix_path is not None:
            reader, writer = await asyncio.open_unix_connection(str(config.unix_path))
            return AsyncioStream(reader, writer)
        reader, writer = await asyncio.open_connection(
            config.host, config.port, ssl=config.ssl,
            server_hostname=(config.server_hostname or config.host) if config.ssl else None)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return AsyncioStream(reader, writer)

    def semaphore(self, value: int) -> Semaphore:
        return asyncio.Semaphore(value)

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None) -> AsyncIterator[None]:
        async with asyncio.timeout(seconds):
            yield

