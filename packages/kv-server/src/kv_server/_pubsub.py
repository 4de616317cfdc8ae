"""Publish/subscribe: channels, patterns, and each subscriber's queue of pushes.

Rules of this module:

1. A message is encoded once per publish (once per matching pattern) and the same
   frame is queued for every subscriber, in publish order: each connection's pushes
   leave in the order they were queued. Every frame is encoded before any is queued,
   so a message too big for a frame reaches no one (TOOBIG), never some.
2. From its first SUBSCRIBE a connection sends everything, replies included,
   through its :class:`Outbox`, drained by a writer task of its own, so a push and a
   reply never interleave inside a frame and a subscriber that stops reading never
   stalls a publisher.
3. An outbox holds at most ``--pubsub-buffer-limit`` bytes (queued plus being
   sent); a subscriber past it is disconnected, as Redis's client-output-buffer-limit
   does, so a slow reader costs bounded memory.
4. Nothing here is stored or logged: a message reaches the connections subscribed
   when it is published, or no one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from kv_protocol.errors import LocalProtocolError, TooBigError
from kv_protocol.framing import encode_frame
from kv_protocol.messages import PUSH
from kv_protocol.values import Key

from ._glob import compile_glob

if TYPE_CHECKING:
    from ._session import Session

log = logging.getLogger("kv_server")


OUTPUT_LIMIT_REASON = "output buffer limit reached: the client does not read its messages"


class Outbox:
    """Bytes waiting to be sent to one subscriber (rules 2 and 3)."""

    __slots__ = ("_drained", "_wakeup", "chunks", "limit", "session", "size")

    def __init__(self, session: Session, limit: int) -> None:
        self.session = session
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        """Bytes queued or being sent (CLIENT LIST omem)."""
        self._wakeup = trio.Event()
        self._drained = trio.Event()

    def put(self, data: bytes) -> None:
        if self.session.closing is not None:
            return
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.limit:
            self.chunks.clear()
            session = self.session
            session.state.stats.output_buffer_disconnects += 1
            log.warning("client %d: %d bytes wait for it, over the limit of %d: disconnecting it",
                        session.id, self.size, self.limit)
            session.close_soon(OUTPUT_LIMIT_REASON, interrupt=True)
        self._wakeup.set()

    async def take(self) -> bytes:
        """Everything queued, once there is something."""
        while not self.chunks:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data

    def sent(self, count: int) -> None:
        self.size -= count
        if not self.size:
            self._drained.set()

    async def drained(self) -> None:
        """Return once everything queued has been sent."""
        while self.size:
            self._drained = trio.Event()
            await self._drained.wait()


class Subscriber:
    """One connection's subscriptions and outbox."""

    __slots__ = ("channels", "outbox", "patterns")

    def __init__(self, session: Session, limit: int) -> None:
        self.channels: set[Key] = set()
        self.patterns: set[Key] = set()
        self.outbox = Outbox(session, limit)

    @property
    def count(self) -> int:
        return len(self.channels) + len(self.patterns)


class PubSub:
    """Who is subscribed to what, server-wide."""

    def __init__(self) -> None:
        self.channels: dict[Key, dict[Session, Outbox]] = {}
        self.patterns: dict[Key, tuple[Callable[[Key], bool], dict[Session, Outbox]]] = {}
        self.messages = 0
        """Messages published (for INFO)."""

    def subscriber(self, session: Session) -> Subscriber:
        if session.pubsub is None:
            session.pubsub = Subscriber(session, session.state.config.pubsub_buffer_limit)
        return session.pubsub

    def subscribe(self, session: Session, channel: Key) -> None:
        subscriber = self.subscriber(session)
        if channel not in subscriber.channels:
            subscriber.channels.add(channel)
            self.channels.setdefault(channel, {})[session] = subscriber.outbox

    def unsubscribe(self, session: Session, channel: Key) -> None:
        if session.pubsub is None or channel not in session.pubsub.channels:
            return
        session.pubsub.channels.discard(channel)
        sessions = self.channels[channel]
        del sessions[session]
        if not sessions:
            del self.channels[channel]

    def psubscribe(self, session: Session, pattern: Key) -> None:
        subscriber = self.subscriber(session)
        if pattern not in subscriber.patterns:
            subscriber.patterns.add(pattern)
            if pattern not in self.patterns:
                self.patterns[pattern] = (compile_glob(pattern), {})
            self.patterns[pattern][1][session] = subscriber.outbox

    def punsubscribe(self, session: Session, pattern: Key) -> None:
        if session.pubsub is None or pattern not in session.pubsub.patterns:
            return
        session.pubsub.patterns.discard(pattern)
        sessions = self.patterns[pattern][1]
        del sessions[session]
        if not sessions:
            del self.patterns[pattern]

    def publish(self, channel: Key, message: object, max_frame_bytes: int) -> int:
        """Queue ``message`` for every subscription that matches; how many (rule 1).

        Raises:
            TooBigError: a push would exceed the frame limit (a long pattern adds to
                it); then no one receives the message.
        """
        deliveries: list[tuple[bytes, dict[Session, Outbox]]] = []
        try:
            sessions = self.channels.get(channel)
            if sessions:
                deliveries.append((encode_frame([PUSH, "message", channel, message],
                                                max_frame_bytes), sessions))
            for pattern, (matches, subscribed) in self.patterns.items():
                if matches(channel):
                    deliveries.append((encode_frame([PUSH, "pmessage", pattern, channel, message],
                                                    max_frame_bytes), subscribed))
        except LocalProtocolError as exc:
            raise TooBigError(f"the message cannot be delivered: {exc}") from None
        self.messages += 1
        for frame, outboxes in deliveries:
            for outbox in list(outboxes.values()):
                outbox.put(frame)
        return sum(len(outboxes) for _, outboxes in deliveries)

    def drop(self, session: Session) -> None:
        """Forget a connection that went away."""
        if session.pubsub is None:
            return
        for channel in list(session.pubsub.channels):
            self.unsubscribe(session, channel)
        for pattern in list(session.pubsub.patterns):
            self.punsubscribe(session, pattern)
