"""Pub/sub: pushes never taken for replies, in the core and through both shells.

The seed system's subscriber read the next frame after SUBSCRIBE as its reply, so
a message already on its way was lost as a "count" and the count came back as a
message. These tests put messages exactly there, through the sans-IO core (any
byte split) and through the sync and async subscribers against a scripted server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from client_helpers import XOR, HangUp, ScriptedServer, ready_core
from kv_client import AsyncClient, Client, ConnectionError, DecryptionError, Message
from kv_client._config import ClientConfig
from kv_client._encryption import encrypt_value
from kv_client._pubsub import Subscriber
from kv_protocol.errors import RemoteProtocolError
from kv_protocol.messages import encode_push, encode_reply
from protocol_helpers import PASSWORD

PAYLOADS: list[object] = [1, "two", b"\x03", [4, None], {"five": 5.0}, True]


def message(channel: str, data: object) -> bytes:
    return encode_push("message", channel, data)


def test_pushes_around_a_reply_are_queued_and_the_reply_returned_whatever_the_byte_split() -> None:
    stream = (message("news", PAYLOADS[0]) + encode_reply(1) + message("news", PAYLOADS[1])
              + encode_push("pmessage", "n*", "news", PAYLOADS[2]) + encode_reply(2)
              + b"".join(message("news", data) for data in PAYLOADS[3:]))
    for size in (1, 2, 7, len(stream)):
        core = ready_core()
        subscriber = Subscriber(core)
        replies = []
        for start in range(0, len(stream), size):
            replies += core.receive_replies(stream[start:start + size])
        assert replies == [1, 2]
        received = []
        while (next_message := subscriber.next_message()) is not None:
            received.append(next_message)
        assert received == [Message("message", "news", PAYLOADS[0]),
                            Message("message", "news", PAYLOADS[1]),
                            Message("pmessage", "news", PAYLOADS[2], pattern="n*"),
                            *(Message("message", "news", data) for data in PAYLOADS[3:])]


def test_the_messages_before_a_kill_notice_come_first_then_the_reason() -> None:
    core = ready_core()
    subscriber = Subscriber(core)
    core.receive_replies(message("news", 1) + encode_push("kill", "killed by client 9") + message("x", 2))
    assert subscriber.next_message() == Message("message", "news", 1)
    with pytest.raises(ConnectionError, match="closed the connection: killed by client 9"):
        subscriber.next_message()


def test_pushes_of_unknown_kinds_are_skipped_and_malformed_messages_refused() -> None:
    core = ready_core()
    subscriber = Subscriber(core)
    core.receive_replies(encode_push("invalidate", "k") + message("news", 1))
    assert subscriber.next_message() == Message("message", "news", 1)
    core.receive_replies(encode_push("message", "news") + encode_push("pmessage", 1, "c", 2))
    for _ in range(2):
        with pytest.raises(RemoteProtocolError, match="malformed"):
            subscriber.next_message()
    core.receive_replies(encode_push("message", 7, "data"))
    with pytest.raises(RemoteProtocolError, match="channel 7"):
        subscriber.next_message()


def test_encrypted_payloads_are_decrypted_with_the_clients_cipher() -> None:
    core = ready_core(ClientConfig(PASSWORD, encryption=XOR))
    subscriber = Subscriber(core)
    sealed = encrypt_value({"card": 4111}, XOR)
    core.receive_replies(message("news", sealed) + message("news", b"plain")
                         + message("news", b"\x00kvenc1:xor\x00\xff") + message("news", 3))
    assert subscriber.next_message() == Message("message", "news", {"card": 4111})
    assert subscriber.next_message() == Message("message", "news", b"plain")
    with pytest.raises(DecryptionError):
        subscriber.next_message()
    assert subscriber.next_message() == Message("message", "news", 3)  # the next one is fine


def test_without_a_cipher_payloads_are_left_as_they_are() -> None:
    core = ready_core()
    sealed = encrypt_value(1, XOR)
    core.receive_replies(message("news", sealed))
    assert Subscriber(core).next_message() == Message("message", "news", sealed)


# -- the shells, against a server that puts messages between commands and replies --

class BusyChannels:
    """Answers each (un)subscribe with its count, always after a message or two."""

    def __init__(self) -> None:
        self.channels: set[object] = set()
        self.sequence = 0

    def _message(self) -> bytes:
        self.sequence += 1
        return message("news", self.sequence)

    def __call__(self, command: list[object]) -> bytes:
        name, *args = command
        if name == "SUBSCRIBE":
            self.channels |= set(args)
        elif name == "UNSUBSCRIBE":
            self.channels -= set(args) if args else self.channels
        elif name == "PING":
            return self._message() + encode_reply("PONG") + self._message()
        else:
            raise AssertionError(f"unexpected {command}")
        return self._message() + self._message() + encode_reply(len(self.channels))


def numbered(*numbers: int) -> list[Message]:
    return [Message("message", "news", n) for n in numbers]


def test_sync_subscriber_mixing_commands_and_messages_in_flight() -> None:
    with ScriptedServer(BusyChannels()) as server, Client(**server.config()) as kv, \
            kv.pubsub() as subscriber:
        assert subscriber.get_message() is None               # nothing subscribed yet
        assert subscriber.subscribe("news", "sport") == 2     # after messages 1 and 2
        assert subscriber.ping() == "PONG"                    # between 3 and 4
        assert subscriber.unsubscribe("sport") == 1           # after 5 and 6
        assert subscriber.subscriptions == 1
        assert [subscriber.get_message(timeout=1) for _ in range(6)] == numbered(1, 2, 3, 4, 5, 6)
        assert subscriber.unsubscribe() == 0                  # after 7 and 8
        assert list(subscriber) == numbered(7, 8)             # ends: nothing left to bring more
        assert server.connections == 1


def test_async_subscriber_mixing_commands_and_messages_in_flight(
        run: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
    async def body() -> None:
        with ScriptedServer(BusyChannels()) as server:
            async with AsyncClient(**server.config()) as kv, kv.pubsub() as subscriber:
                assert await subscriber.subscribe("news", "sport") == 2
                assert await subscriber.ping() == "PONG"
                assert await subscriber.unsubscribe("sport") == 1
                assert [await subscriber.get_message(timeout=1) for _ in range(6)] == \
                    numbered(1, 2, 3, 4, 5, 6)
                assert await subscriber.unsubscribe() == 0
                assert [received async for received in subscriber] == numbered(7, 8)

    run(body)


def quiet(command: list[object]) -> bytes:
    """Answers SUBSCRIBE and never sends a message."""
    return encode_reply(len(command) - 1)


def test_get_message_waits_no_longer_than_its_timeout() -> None:
    with ScriptedServer(quiet) as server, Client(**server.config()) as kv, kv.pubsub() as subscriber:
        subscriber.subscribe("news")
        started = time.monotonic()
        assert subscriber.get_message(timeout=0.2) is None
        assert 0.15 < time.monotonic() - started < 2
        assert subscriber.get_message() is None               # timeout 0: a poll


def test_async_get_message_waits_no_longer_than_its_timeout(
        run: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
    async def body() -> None:
        with ScriptedServer(quiet) as server:
            async with AsyncClient(**server.config()) as kv, kv.pubsub() as subscriber:
                await subscriber.subscribe("news")
                started = time.monotonic()
                assert await subscriber.get_message(timeout=0.2) is None
                assert 0.15 < time.monotonic() - started < 2
                assert await subscriber.get_message() is None

    run(body)


def killed(command: list[object]) -> HangUp:
    return HangUp(encode_reply(1) + message("news", "last words")
                  + encode_push("kill", "killed by client 9"))


def test_a_kill_notice_ends_iteration_with_the_reason() -> None:
    with ScriptedServer(killed) as server, Client(**server.config()) as kv, kv.pubsub() as subscriber:
        subscriber.subscribe("news")
        messages = subscriber.listen()
        assert next(messages) == Message("message", "news", "last words")
        with pytest.raises(ConnectionError, match="killed by client 9"):
            next(messages)
        assert subscriber.subscriptions == 0 and subscriber.get_message() is None


def test_async_kill_notice_ends_iteration_with_the_reason(
        run: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
    async def body() -> None:
        with ScriptedServer(killed) as server:
            async with AsyncClient(**server.config()) as kv, kv.pubsub() as subscriber:
                await subscriber.subscribe("news")
                messages = aiter(subscriber)
                assert await anext(messages) == Message("message", "news", "last words")
                with pytest.raises(ConnectionError, match="killed by client 9"):
                    await anext(messages)
                assert subscriber.subscriptions == 0

    run(body)

