"""One async connection: a trio or asyncio stream driven by the sans-IO core.

The pool (``_async.py``) lends it for requests; a watching pipeline and a
subscriber hold one for longer. Errors are mapped here, once: a broken or refused
stream raises :class:`ConnectionError`, a missed reply :class:`TimeoutError`.
"""

from __future__ import annotations

import builtins

from kv_protocol.errors import RemoteProtocolError

from ._async_streams import Backend, Stream
from ._config import ClientConfig
from ._core import ClientCore
from ._errors import ConnectionError, TimeoutError


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

    async def request(self, payload: bytes, count: int, timeout_s: float | None) -> list[object]:
        """Send ``payload`` (``count`` commands) and return their replies within ``timeout_s``."""
        config = self.core.config
        try:
            if timeout_s is None:
                return await self.exchange(payload, count)
            async with self.backend.deadline(timeout_s):
                return await self.exchange(payload, count)
        except ConnectionError:
            raise
        except builtins.TimeoutError:
            raise TimeoutError(f"no reply from {config.address} within {timeout_s} s") from None
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

    async def receive_pushes(self, timeout_s: float | None) -> None:
        """Wait up to ``timeout_s`` seconds (None: for ever) for pushes; what arrives
        is queued in ``core.pushes``. Cancelling the wait loses nothing: both
        transports keep data that arrived until it is received.

        Raises:
            ConnectionError: the connection broke or the server closed it.
            RemoteProtocolError: a reply arrived, and no request is waiting for one.
        """
        core = self.core
        try:
            async with self.backend.deadline(timeout_s):
                data = await self.stream.receive_some()
        except builtins.TimeoutError:
            return
        except OSError as exc:
            raise ConnectionError(f"connection to {core.config.address} broke: {exc}") from exc
        if core.receive_replies(data):
            raise RemoteProtocolError(f"{core.config.address} sent a reply that no request "
                                      "asked for")

    def fileno(self) -> int:
        return self.stream.fileno()

    def abort(self) -> None:
        self.stream.abort()
