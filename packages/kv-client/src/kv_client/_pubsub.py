"""Pub/sub without I/O: messages, and the state of a subscribed connection.

Rules of a subscribed connection (kv_protocol's pubsub table):

1. Each SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE or PUNSUBSCRIBE answers one reply, the
   number of subscriptions left; PING answers as a reply too.
2. Messages come as pushes, ``[2, "message", channel, payload]`` and
   ``[2, "pmessage", pattern, channel, payload]``, at any time, also between a
   command and its reply. The core (``_core.py``) keeps pushes apart from replies,
   so a message that arrives while a SUBSCRIBE waits for its count is queued for
   ``get_message``, never taken for the count (the seed system took it).
3. ``[2, "kill", reason]`` says the server is closing the connection: the messages
   queued before it are still returned, then :class:`ConnectionError` says why.
4. A payload keeps its type; one encrypted by a client with a cipher is decrypted
   with that cipher (PUBLISH encrypts its message, a VALUE argument).

The shells (``_sync_pubsub.py``, ``_async_pubsub.py``) add the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from kv_protocol.errors import RemoteProtocolError
from kv_protocol.messages import Push
from kv_protocol.values import Key

from ._core import ClientCore
from ._encryption import MAGIC, decrypt_value

KILL: Final = "kill"
"""The push that announces the server is closing the connection."""


@dataclass(frozen=True, slots=True)
class Message:
    """One published message, as a subscriber receives it.

    Attributes:
        kind: ``"message"`` (a channel subscription) or ``"pmessage"`` (a pattern's).
        channel: the channel it was published to.
        data: the payload, with the type it was published with.
        pattern: for a ``"pmessage"``, the pattern that matched the channel.
    """

    kind: Literal["message", "pmessage"]
    channel: Key
    data: Any
    pattern: Key | None = None


class Subscriber:
    """What a subscribed connection has received and what it is subscribed to."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core
        self.subscriptions = 0
        """Channels and patterns subscribed to, as the last (un)subscribe answered."""

    def next_message(self) -> Message | None:
        """The oldest message received and not yet returned, or None.

        Pushes of kinds this version does not know are skipped, as Redis clients do.

        Raises:
            ConnectionError: the server announced that it closes the connection.
            DecryptionError: an encrypted payload does not decrypt (the message is
                dropped; the next one can be read).
            RemoteProtocolError: a message push of the wrong shape.
        """
        pushes = self.core.pushes
        while pushes:
            push = pushes.popleft()
            if push.kind == KILL:
                raise self.core.closed_error()
            message = self._message(push)
            if message is not None:
                return message
        return None

    def _message(self, push: Push) -> Message | None:
        data = push.data
        if push.kind == "message" and len(data) == 2:
            return Message("message", _key(push, data[0]), self._payload(data[1]))
        if push.kind == "pmessage" and len(data) == 3:
            return Message("pmessage", _key(push, data[1]), self._payload(data[2]),
                           pattern=_key(push, data[0]))
        if push.kind in ("message", "pmessage"):
            raise RemoteProtocolError(f"malformed {push.kind} push: {data!r}")
        return None

    def _payload(self, data: object) -> object:
        cipher = self.core.config.encryption
        if cipher is not None and type(data) is bytes and data.startswith(MAGIC):
            return decrypt_value(data, cipher)
        return data


def _key(push: Push, name: object) -> Key:
    if not isinstance(name, str | bytes):
        raise RemoteProtocolError(f"malformed {push.kind} push: channel {name!r}")
    return name
