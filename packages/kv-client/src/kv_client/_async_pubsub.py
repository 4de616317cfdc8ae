"""The async subscriber: ``AsyncClient.pubsub()``, for trio and asyncio.

The blocking subscriber's rules (``_sync_pubsub.py``) hold here: a connection of
its own, opened at the first command, closed by ``aclose()`` or the ``async with``
block, and by a command that fails or is cancelled in the middle. Waiting for a
message may be cancelled at any time (a deadline around ``get_message``, or the
``timeout`` argument) without losing one: what arrived stays queued. One task
uses a subscriber at a time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from kv_protocol.errors import KvError, ProtocolError
from kv_protocol.values import Key, Value

from ._async_connection import AsyncConnection
from ._async_streams import Backend
from ._commands import _NO_MESSAGE, _NoMessage
from ._commands_base import as_is
from ._config import ClientConfig
from ._core import decrypt_replies, encode_request
from ._errors import ConnectionError, TimeoutError
from ._pubsub import Message, Subscriber

T = TypeVar("T")


class AsyncPubSub:
    """Subscriptions to channels and patterns, and the messages they bring.

    Example::

        async with kv.pubsub() as subscriber:
            await subscriber.subscribe("news")
            await kv.publish("news", {"id": 1})
            message = await subscriber.get_message(timeout=5)
            assert message is not None and message.data == {"id": 1}
            async for message in subscriber:    # every message, until unsubscribed
                ...
    """

    def __init__(self, config: ClientConfig, backend: Backend) -> None:
        self.config, self._backend = config, backend
        self._connection: AsyncConnection | None = None
        self._subscriber: Subscriber | None = None

    @property
    def subscriptions(self) -> int:
        """How many channels and patterns this subscriber is subscribed to."""
        return self._subscriber.subscriptions if self._subscriber is not None else 0

    async def subscribe(self, *channels: Key) -> int:
        """Receive the messages published to ``channels``; the subscriptions now."""
        return await self._subscription("SUBSCRIBE", *channels)

    async def unsubscribe(self, *channels: Key) -> int:
        """Stop receiving from ``channels`` (all, given none); the subscriptions left."""
        return await self._subscription("UNSUBSCRIBE", *channels)

    async def psubscribe(self, *patterns: str | bytes) -> int:
        """Receive the messages of channels matching glob ``patterns``; the subscriptions now."""
        return await self._subscription("PSUBSCRIBE", *patterns)

    async def punsubscribe(self, *patterns: str | bytes) -> int:
        """Stop receiving for ``patterns`` (all, given none); the subscriptions left."""
        return await self._subscription("PUNSUBSCRIBE", *patterns)

    async def ping(self, message: Value | _NoMessage = _NO_MESSAGE) -> Any:
        """Check that the server answers (``PONG``, or the message), subscribed or not."""
        return await self._command(as_is, "PING", *(() if message is _NO_MESSAGE else (message,)))

    async def _subscription(self, *args: object) -> int:
        count = await self._command(int, *args)
        assert self._subscriber is not None
        self._subscriber.subscriptions = count
        return count

    async def _command(self, convert: Callable[[Any], T], *args: object) -> T:
        commands = [args]
        payload = encode_request(self.config, commands)
        connection = await self._open()
        try:
            replies = await connection.request(payload, 1, self.config.timeout_s)
        except BaseException:
            self._abort()
            raise
        [reply] = decrypt_replies(self.config, commands, replies)
        if isinstance(reply, KvError):
            raise reply
        return convert(reply)

    async def _open(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await AsyncConnection.open(self.config, self._backend)
            self._subscriber = Subscriber(self._connection.core)
        return self._connection

    async def get_message(self, timeout: float | None = 0.0) -> Message | None:
        """The next message, waiting for it up to ``timeout`` seconds (None: for ever).

        Returns and raises as ``PubSub.get_message``: None when no message came in
        time, or at once when no subscription is left to bring one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            connection, subscriber = self._connection, self._subscriber
            if connection is None or subscriber is None:
                return None
            try:
                message = subscriber.next_message()
                if message is not None or not subscriber.subscriptions:
                    return message
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                await connection.receive_pushes(remaining)
            except (ConnectionError, TimeoutError, ProtocolError):
                self._abort()
                raise

    async def listen(self) -> AsyncIterator[Message]:
        """Every message, as it arrives, until no subscription is left.

        Raises:
            ConnectionError: as :meth:`get_message`; it ends the iteration.
        """
        while (message := await self.get_message(timeout=None)) is not None:
            yield message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self.listen()

    def _abort(self) -> None:
        connection, self._connection, self._subscriber = self._connection, None, None
        if connection is not None:
            connection.abort()

    async def aclose(self) -> None:
        """Close the connection, which ends every subscription."""
        connection, self._connection, self._subscriber = self._connection, None, None
        if connection is not None:
            await connection.stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
