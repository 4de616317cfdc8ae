"""The blocking subscriber: ``Client.pubsub()`` (rules in ``_pubsub.py``).

A subscriber holds a connection of its own, outside the pool: a subscribed
connection can run nothing but the subscribe commands and PING, so it is never
lent for other commands, and closing it ends every subscription at once. It
opens at the first command and closes with :meth:`PubSub.close` (or the ``with``
block); a command that fails in the middle (broken, timed out, interrupted) closes
it too, as its state is unknown, and the next command opens a new one, with no
subscriptions. One thread uses a subscriber at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from kv_protocol.errors import KvError, ProtocolError
from kv_protocol.values import Key, Value

from ._commands import _NO_MESSAGE, _NoMessage
from ._commands_base import as_is
from ._config import ClientConfig
from ._core import decrypt_replies, encode_request
from ._errors import ConnectionError, TimeoutError
from ._pubsub import Message, Subscriber
from ._sync_connection import SyncConnection

T = TypeVar("T")


class PubSub:
    """Subscriptions to channels and patterns, and the messages they bring.

    Example::

        with kv.pubsub() as subscriber:
            subscriber.subscribe("news")
            kv.publish("news", {"id": 1})
            message = subscriber.get_message(timeout=5)
            assert message is not None and message.data == {"id": 1}
            for message in subscriber:      # every message, until unsubscribed
                ...
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._connection: SyncConnection | None = None
        self._subscriber: Subscriber | None = None

    @property
    def subscriptions(self) -> int:
        """How many channels and patterns this subscriber is subscribed to."""
        return self._subscriber.subscriptions if self._subscriber is not None else 0

    def subscribe(self, *channels: Key) -> int:
        """Receive the messages published to ``channels``; the subscriptions now."""
        return self._subscription("SUBSCRIBE", *channels)

    def unsubscribe(self, *channels: Key) -> int:
        """Stop receiving from ``channels`` (all, given none); the subscriptions left."""
        return self._subscription("UNSUBSCRIBE", *channels)

    def psubscribe(self, *patterns: str | bytes) -> int:
        """Receive the messages of channels matching glob ``patterns``; the subscriptions now."""
        return self._subscription("PSUBSCRIBE", *patterns)

    def punsubscribe(self, *patterns: str | bytes) -> int:
        """Stop receiving for ``patterns`` (all, given none); the subscriptions left."""
        return self._subscription("PUNSUBSCRIBE", *patterns)

    def ping(self, message: Value | _NoMessage = _NO_MESSAGE) -> Any:
        """Check that the server answers (``PONG``, or the message), subscribed or not."""
        return self._command(as_is, "PING",
                             *(() if message is _NO_MESSAGE else (message,)))

    def _subscription(self, *args: object) -> int:
        count = self._command(int, *args)
        assert self._subscriber is not None
        self._subscriber.subscriptions = count
        return count

    def _command(self, convert: Callable[[Any], T], *args: object) -> T:
        commands = [args]
        payload = encode_request(self.config, commands)
        connection = self._open()
        try:
            replies = connection.request(payload, 1, self.config.timeout_s)
        except BaseException:
            self.close()
            raise
        [reply] = decrypt_replies(self.config, commands, replies)
        if isinstance(reply, KvError):
            raise reply
        return convert(reply)

    def _open(self) -> SyncConnection:
        if self._connection is None:
            self._connection = SyncConnection(self.config)
            self._subscriber = Subscriber(self._connection.core)
        return self._connection

    def get_message(self, timeout: float | None = 0.0) -> Message | None:
        """The next message, waiting for it up to ``timeout`` seconds (None: for ever).

        Returns:
            The oldest message not yet returned, or None when none came in time, or
            at once when there is no subscription left to bring one.

        Raises:
            ConnectionError: the connection broke, or the server closed it (CLIENT
                KILL, shutdown, a subscriber too slow to read its messages); the
                message says why when the server did. The subscriber is closed, as
                after a TimeoutError (a message cut short) or a ProtocolError.
            DecryptionError: a payload did not decrypt; that message is dropped.
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
                connection.receive_pushes(remaining)
            except (ConnectionError, TimeoutError, ProtocolError):
                self.close()
                raise

    def listen(self) -> Iterator[Message]:
        """Every message, as it arrives, until no subscription is left.

        Raises:
            ConnectionError: as :meth:`get_message`; it ends the iteration.
        """
        while (message := self.get_message(timeout=None)) is not None:
            yield message

    def __iter__(self) -> Iterator[Message]:
        return self.listen()

    def close(self) -> None:
        """Close the connection, which ends every subscription."""
        connection, self._connection, self._subscriber = self._connection, None, None
        if connection is not None:
            connection.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
