"""kv_client's subscribers against a real kv-server: PubSub (blocking) and AsyncPubSub.

What must hold: every subscriber connection receives each message once, with its
type, in publish order; the count a (un)subscribe command returns is never a
message, and no message is ever taken for a count, even while another client
floods the channel with integers (which a confused client would mix up with the
integer counts); patterns deliver ``pmessage`` with the pattern; a subscriber
killed by CLIENT KILL ends its iteration with ConnectionError saying so; and
encrypted payloads are decrypted by a subscriber with the cipher. Every wait is
bounded: get_message has a timeout, threads are joined with one, async bodies run
under a deadline.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from client_helpers import KV_RUN_TIMEOUT_S, XOR, kv_argv
from integration_helpers import PASSWORD, ServerProcess
from kv_client import AsyncClient, Client, ConnectionError, Message, PubSub
from protocol_helpers import same
from test_client_async import Runner, both, gather

TYPED_PAYLOADS: list[Any] = [
    0, -1, 2**70, 1.5, -0.0, "text", "", "ünïcödé ✓", b"\x00\xffbytes", b"",
    [1, "two", 3.0, None, [b"nested"]], {"k": [1, 2], 7: None, b"b": {"deep": True}},
    None, True, False,
]
SUBSCRIBERS = 3
SEQUENCE = 200
WAIT_S = 10.0
"""The longest any single message may take to arrive; far above what it needs."""
FLOOD_S = 1.0
"""How long the flooding publisher runs while a subscriber changes its subscriptions."""


@pytest.fixture
def kv(module_kv_server: ServerProcess) -> Iterator[Client]:
    with module_kv_server.client(timeout=WAIT_S) as client:
        yield client


def receive(subscriber: PubSub, count: int) -> list[Message]:
    """The next ``count`` messages, each within WAIT_S."""
    received: list[Message] = []
    for _ in range(count):
        message = subscriber.get_message(timeout=WAIT_S)
        assert message is not None, f"only {len(received)} of {count} messages arrived"
        received.append(message)
    return received


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.01)


def test_several_subscribers_receive_typed_payloads_in_publish_order(kv: Client) -> None:
    subscribers = [kv.pubsub() for _ in range(SUBSCRIBERS)]
    try:
        for subscriber in subscribers:
            assert subscriber.subscribe("ps:typed", "ps:sequence") == 2
        for payload in TYPED_PAYLOADS:
            assert kv.publish("ps:typed", payload) == SUBSCRIBERS
        with kv.pipeline() as pipe:                      # published back to back
            for number in range(SEQUENCE):
                pipe.publish("ps:sequence", number)
            assert pipe.execute() == [SUBSCRIBERS] * SEQUENCE
        for subscriber in subscribers:
            typed = receive(subscriber, len(TYPED_PAYLOADS))
            assert {message.channel for message in typed} == {"ps:typed"}
            assert all(same(message.data, payload)
                       for message, payload in zip(typed, TYPED_PAYLOADS, strict=True))
            sequence = receive(subscriber, SEQUENCE)
            assert [message.data for message in sequence] == list(range(SEQUENCE))
            assert subscriber.get_message(timeout=0.05) is None
    finally:
        for subscriber in subscribers:
            subscriber.close()


def test_subscription_changes_amid_a_flood_of_integer_messages_never_mix_counts_and_messages(
        module_kv_server: ServerProcess, kv: Client) -> None:
    """The seed's bug: a message arriving before SUBSCRIBE's reply was read as the reply."""
    done = threading.Event()
    published: list[int] = []

    def flood() -> None:
        with module_kv_server.client() as publisher:
            number = 0
            while not done.is_set():
                publisher.publish("ps:flood", number)
                published.append(number)
                number += 1

    with kv.pubsub() as subscriber:
        assert subscriber.subscribe("ps:flood") == 1
        thread = threading.Thread(target=flood)
        thread.start()
        received: list[Message] = []
        try:
            deadline, round_ = time.monotonic() + FLOOD_S, 0
            while time.monotonic() < deadline:
                round_ += 1
                assert subscriber.subscribe(f"ps:quiet{round_}", "ps:other") == 3
                assert subscriber.psubscribe("ps:never*") == 4
                assert subscriber.ping(round_) == round_
                assert subscriber.unsubscribe(f"ps:quiet{round_}", "ps:other") == 2
                assert subscriber.punsubscribe() == 1
                while (message := subscriber.get_message()) is not None:
                    received.append(message)
        finally:
            done.set()
            thread.join(WAIT_S)
        assert not thread.is_alive() and round_ > 3
        assert received, "no message arrived while the subscriptions changed: nothing was tested"
        received += receive(subscriber, len(published) - len(received))
        assert subscriber.get_message(timeout=0.05) is None
    assert {message.channel for message in received} == {"ps:flood"}
    assert [message.data for message in received] == published  # none lost, none extra


def test_patterns_deliver_pmessages_and_a_channel_matched_twice_gets_both(kv: Client) -> None:
    with kv.pubsub() as subscriber:
        assert subscriber.psubscribe("ps:news.*", "ps:*.sport") == 2
        assert subscriber.subscribe("ps:news.sport") == 3
        assert kv.publish("ps:news.world", "w") == 1
        assert kv.publish("ps:news.sport", {"goal": 1}) == 3
        assert kv.publish("ps:weather", "unheard") == 0
        first = receive(subscriber, 1)
        assert first == [Message("pmessage", "ps:news.world", "w", pattern="ps:news.*")]
        both_ways = receive(subscriber, 3)
        assert {(message.kind, message.pattern) for message in both_ways} == {
            ("pmessage", "ps:news.*"), ("pmessage", "ps:*.sport"), ("message", None)}
        assert all(message.data == {"goal": 1} for message in both_ways)
        assert subscriber.punsubscribe("ps:news.*") == 2
        assert kv.publish("ps:news.world", "w") == 0
        assert subscriber.get_message(timeout=0.1) is None


def test_introspection_counts_channels_subscribers_and_patterns(kv: Client) -> None:
    with kv.pubsub() as first, kv.pubsub() as second:
        first.subscribe("ps:intro.a", "ps:intro.b")
        second.subscribe("ps:intro.a")
        second.psubscribe("ps:intro.pattern.*")
        assert sorted(kv.pubsub_channels("ps:intro.*")) == ["ps:intro.a", "ps:intro.b"]
        assert kv.pubsub_numsub("ps:intro.a", "ps:intro.b", "ps:intro.none") == {
            "ps:intro.a": 2, "ps:intro.b": 1, "ps:intro.none": 0}
        assert kv.pubsub_numpat() >= 1
    wait_until(lambda: kv.pubsub_channels("ps:intro.*") == [], "closing unsubscribing")


def test_listen_ends_once_every_subscription_is_gone(kv: Client) -> None:
    with kv.pubsub() as subscriber:
        subscriber.subscribe("ps:last")
        kv.publish("ps:last", "one")
        kv.publish("ps:last", "two")
        seen = []
        for message in subscriber.listen():
            seen.append(message.data)
            if message.data == "one":
                assert subscriber.unsubscribe() == 0   # "two" was sent before: still comes
        assert seen == ["one", "two"]


def test_a_killed_subscriber_ends_its_iteration_with_the_reason(
        module_kv_server: ServerProcess, kv: Client) -> None:
    with module_kv_server.client(name="ps:victim") as victim, victim.pubsub() as subscriber:
        subscriber.subscribe("ps:kill")
        [entry] = [entry for entry in kv.client_list() if entry["name"] == "ps:victim"]
        assert entry["sub"] == 1
        kv.publish("ps:kill", "before")
        assert receive(subscriber, 1)[0].data == "before"
        assert kv.client_kill(entry["id"]) == 1
        messages = subscriber.listen()
        with pytest.raises(ConnectionError, match=f"killed by client {kv.client_id()}"):
            next(messages)
        assert subscriber.subscriptions == 0


def test_get_message_returns_none_when_its_timeout_passes(kv: Client) -> None:
    with kv.pubsub() as subscriber:
        subscriber.subscribe("ps:silent")
        started = time.monotonic()
        assert subscriber.get_message(timeout=0.3) is None
        assert 0.25 <= time.monotonic() - started < 3


def test_encrypted_payloads_are_decrypted_by_subscribers_with_the_cipher(
        module_kv_server: ServerProcess, kv: Client) -> None:
    with module_kv_server.client(encryption=XOR) as sealed, sealed.pubsub() as with_key, \
            kv.pubsub() as without_key:
        with_key.subscribe("ps:secret")
        without_key.subscribe("ps:secret")
        assert sealed.publish("ps:secret", {"card": 4111}) == 2
        assert receive(with_key, 1)[0].data == {"card": 4111}
        assert receive(without_key, 1)[0].data.startswith(b"\x00kvenc1:xor\x00")


@both
def test_async_subscribers_receive_in_order_and_iterate_until_unsubscribed(
        run: Runner, module_kv_server: ServerProcess) -> None:
    async def body() -> None:
        async with AsyncClient(module_kv_server.host, module_kv_server.port,
                               password=PASSWORD) as kv:
            subscribers = [kv.pubsub() for _ in range(SUBSCRIBERS)]
            for subscriber in subscribers:
                assert await subscriber.subscribe("ps:async") == 1
            for payload in [*TYPED_PAYLOADS, "stop"]:
                assert await kv.publish("ps:async", payload) == SUBSCRIBERS

            async def drain(subscriber: Any) -> None:
                async with subscriber:
                    seen = []
                    async for message in subscriber:
                        seen.append(message.data)
                        if message.data == "stop":
                            await subscriber.unsubscribe()
                    assert all(same(a, b) for a, b in zip(seen, [*TYPED_PAYLOADS, "stop"],
                                                          strict=True))

            await gather(*(lambda s=subscriber: drain(s) for subscriber in subscribers))
            silent = kv.pubsub()
            async with silent:
                await silent.psubscribe("ps:async.*")
                started = time.monotonic()
                assert await silent.get_message(timeout=0.3) is None
                assert 0.25 <= time.monotonic() - started < 3

    run(body)


def test_kv_subscribe_prints_each_message_on_its_line_as_it_arrives(
        module_kv_server: ServerProcess, kv: Client) -> None:
    command = kv_argv(module_kv_server.port, PASSWORD, "--count", "3", "SUBSCRIBE", "ps:cli", "ps:cli2")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        wait_until(lambda: kv.pubsub_numsub("ps:cli2") == {"ps:cli2": 1}, "kv subscribing")
        kv.publish("ps:cli", {"id": 1})
        kv.publish("ps:cli2", "two\tparts")
        kv.publish("ps:cli", b"\xff")
        out, err = proc.communicate(timeout=KV_RUN_TIMEOUT_S)
    assert (proc.returncode, err) == (0, b"")
    assert out == b'ps:cli\t{"id":1}\nps:cli2\t"two\\tparts"\nps:cli\t\\xff\n'


def test_kv_psubscribe_prints_json_until_ctrl_c(module_kv_server: ServerProcess, kv: Client) -> None:
    command = kv_argv(module_kv_server.port, PASSWORD, "--json", "PSUBSCRIBE", "ps:json.*")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        wait_until(lambda: kv.publish("ps:json.a", [1, None]) == 1, "kv subscribing")
        assert proc.stdout.readline() == (b'{"kind":"pmessage","channel":"ps:json.a",'
                                          b'"data":[1,null],"pattern":"ps:json.*"}\n')
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=KV_RUN_TIMEOUT_S)
    assert proc.returncode == 130 and b"Traceback" not in err
