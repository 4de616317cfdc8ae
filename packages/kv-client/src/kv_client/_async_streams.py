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
from typing import TYPE_CHECKING, Final, Protocol

import sniffio

from ._config import ClientConfig
from ._core import RECEIVE_BYTES

if TYPE_CHECKING:
    import trio

CLOSE_TIMEOUT_S: Final = 1.0
"""How long closing a connection may wait for the server's side of a TLS goodbye."""


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

    def running(self) -> bool:
        """Whether the event loop this backend was made in is the one running now:
        a pool's connections belong to one loop (asyncio) or run (trio)."""

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


class TrioSocket:
    """A plain socket (TCP or Unix) driven directly, as kv-server's SocketTransport is.

    Going through trio's SocketStream costs a scheduler trip per send and per
    receive (about 10 µs each); here a send that the kernel takes at once, and a
    receive whose data has arrived, cost none. Each request still waits for its
    reply in ``wait_readable``, so it remains a checkpoint.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock

    async def send_all(self, data: bytes) -> None:
        import trio
        view, sent = memoryview(data), 0
        while sent < len(view):
            try:
                sent += self._sock.send(view[sent:])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)

    async def receive_some(self) -> bytes:
        import trio
        while True:
            try:
                return self._sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)

    async def aclose(self) -> None:
        self.abort()

    def fileno(self) -> int:
        return self._sock.fileno()

    def abort(self) -> None:
        import trio
        if self._sock.fileno() != -1:
            trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class TrioStream:
    """A TLS stream: trio's SSLStream over its SocketStream."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream
        self._socket = stream.transport_stream.socket

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

    def __init__(self) -> None:
        import trio
        self._token = trio.lowlevel.current_trio_token()

    def running(self) -> bool:
        import trio
        try:
            return trio.lowlevel.current_trio_token() is self._token
        except RuntimeError:
            return False

    async def connect(self, config: ClientConfig) -> Stream:
        import trio
        if config.unix_path is not None:
            opened = await trio.open_unix_socket(str(config.unix_path))
            return TrioSocket(socket.socket(fileno=opened.socket.detach()))
        stream = await trio.open_tcp_stream(config.host, config.port)
        if config.ssl is None:
            return TrioSocket(socket.socket(fileno=stream.socket.detach()))
        tls = trio.SSLStream(stream, config.ssl, server_hostname=config.server_hostname or config.host)
        try:
            await tls.do_handshake()
        except BaseException as exc:  # refused, timed out or cancelled: close the socket
            stream.socket.close()
            if isinstance(exc, trio.BrokenResourceError):
                raise OSError(f"TLS handshake failed: {exc.__cause__ or exc}") from exc
            raise
        return TrioStream(tls)

    def semaphore(self, value: int) -> Semaphore:
        return _TrioSlots(value)

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


class _TrioSlots:
    """trio's semaphore, taken without a scheduler trip when a slot is free.

    (asyncio's ``acquire`` already returns at once when it can.)
    """

    def __init__(self, value: int) -> None:
        import trio
        self._semaphore = trio.Semaphore(value)
        self._would_block = trio.WouldBlock

    async def acquire(self) -> None:
        try:
            self._semaphore.acquire_nowait()
        except self._would_block:
            await self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()


class _AsyncioProtocol(asyncio.Protocol):
    """Collects what arrives for :class:`AsyncioStream`.

    A protocol rather than asyncio's StreamReader and StreamWriter: the client
    reads whatever has arrived and never needs their buffering, and skipping them
    saves about a third of the client's time per call.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received: list[bytes] = []
        self.closed = False
        self.error: Exception | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self._wake_reader()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.error = True, exc
        self._wake_reader()
        self.resume_writing()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def readable(self) -> None:
        self._readable = asyncio.get_running_loop().create_future()
        try:
            await self._readable
        finally:
            self._readable = None

    async def writable(self) -> None:
        if self._writable is not None:
            await asyncio.shield(self._writable)


class AsyncioStream:
    def __init__(self, protocol: _AsyncioProtocol) -> None:
        assert protocol.transport is not None
        self._protocol, self._transport = protocol, protocol.transport

    async def send_all(self, data: bytes) -> None:
        if self._protocol.closed:
            raise self._protocol.error or ConnectionResetError("the server closed the connection")
        self._transport.write(data)
        await self._protocol.writable()

    async def receive_some(self) -> bytes:
        protocol = self._protocol
        while not protocol.received:
            if protocol.closed:
                if protocol.error is not None:
                    raise protocol.error
                return b""
            await protocol.readable()
        data = b"".join(protocol.received)
        protocol.received.clear()
        return data

    async def aclose(self) -> None:
        # A TLS transport closes its socket only after the close_notify exchange: wait
        # for it (briefly), or asyncio.run may end first and leave the socket open.
        self._transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._protocol.lost), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._transport.abort()

    def fileno(self) -> int:
        sock = self._transport.get_extra_info("socket")
        return -1 if sock is None else int(sock.fileno())

    def abort(self) -> None:
        self._transport.abort()


class AsyncioBackend:
    name = "asyncio"

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    def running(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def connect(self, config: ClientConfig) -> Stream:
        loop = asyncio.get_running_loop()
        if config.unix_path is not None:
            _, protocol = await loop.create_unix_connection(_AsyncioProtocol, str(config.unix_path))
        else:
            # asyncio sets TCP_NODELAY on TCP connections itself.
            _, protocol = await loop.create_connection(
                _AsyncioProtocol, config.host, config.port, ssl=config.ssl,
                server_hostname=(config.server_hostname or config.host) if config.ssl else None)
        return AsyncioStream(protocol)

    def semaphore(self, value: int) -> Semaphore:
        return asyncio.Semaphore(value)

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None) -> AsyncIterator[None]:
        async with asyncio.timeout(seconds):
            yield

