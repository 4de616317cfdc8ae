"""SUBSCRIBE/PSUBSCRIBE/PUBLISH/PUBSUB against a real server, across connections and processes.

What must hold (``_pubsub.py``, docs/commands.md): every subscriber receives each
publisher's messages in publish order with their types intact; pushes are never
confused with replies, even while SUBSCRIBE and UNSUBSCRIBE are pipelined with
messages in flight; a subscribed connection may only run the pub/sub commands and
PING, and runs everything again once it has unsubscribed from everything; and a
subscriber that does not read is cut off at ``--pubsub-buffer-limit`` while the
publisher keeps being served and the server's memory stays bounded.

Two failure modes of the crowRedis seed are tested on purpose: messages that never
crossed from one client to another, and a connection that mixed pub/sub with normal
commands and lost track of which frame answered what.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from integration_helpers import (
    Connect,
    PushConnection,
    ServerProcess,
    Worker,
    start_server,
    vm_rss_kib,
    wait_until,
)
from kv_protocol.errors import ErrorCode
from kv_protocol.messages import ERROR, PUSH, REPLY, Push

TYPED_PAYLOADS: list[object] = [
    0, -1, 2**70, 1.5, 3.0, -0.0, "text", "", "ünïcödé ✓", b"\x00\xffbytes", b"",
    [1, "two", 3.0, None, [b"nested"]], {"k": [1, 2], 7: None, b"b": {"deep": True}},
    None, True, False,
]
"""One message of every kind of value, each of which must arrive with its exact type."""
SUBSCRIBER_PROCESSES = 3
PUBLISHER_PROCESSES = 2
SEQUENCE_LENGTH = 300
"""Messages each publisher process sends; each subscriber checks their order."""
PIPELINE_ROUNDS_S = 1.5
"""How long the pipelined SUBSCRIBE/UNSUBSCRIBE rounds run against a flooding publisher."""
BUFFER_LIMIT_BYTES = 262_144
"""The slow-subscriber test's --pubsub-buffer-limit: small, yet several of the server's
64 KiB reads of PUBLISH commands, so a subscriber that keeps reading stays connected."""
FLOOD_PAYLOAD_BYTES = 4096
FLOOD_MESSAGES = 10_000
FLOOD_BATCH = 50
"""PUBLISH commands per write: 200 KB, below the limit, so the subscriber that reads
falls at most one batch behind."""
"""40 MB in all: far past the limit and the kernel's socket buffers, so a server that
kept a non-reading subscriber's messages would grow by about that much."""
RSS_GROWTH_LIMIT_KIB = 20 * 1024

def typed(values: list[object]) -> list[tuple[type, object]]:
    """Values with their types, so that 1, 1.0 and True never compare equal."""
    return [(type(value), typed(value) if isinstance(value, list) else value)  # type: ignore[misc]
            for value in values]


def pushes(messages: list[tuple[int, object]]) -> list[tuple[object, ...]]:
    """Each message, which must be a push, as (kind, *data)."""
    found = []
    for kind, payload in messages:
        assert kind == PUSH and isinstance(payload, Push), (kind, payload)
        found.append((payload.kind, *payload.data))
    return found


def numsub(conn: PushConnection, *channels: object) -> dict[object, int]:
    return conn.request("PUBSUB", "NUMSUB", *channels)  # type: ignore[return-value]


# --- delivery across processes ---------------------------------------------------------------

_SUBSCRIBER = '''
kv = Raw()
assert kv.call("SUBSCRIBE", *ARGS["channels"]) == len(ARGS["channels"])
emit("ready")
got = []
while len(got) < ARGS["expect"] and time.monotonic() < DEADLINE:
    kind, push = kv.next()
    assert kind == PUSH, (kind, push)
    got.append([push.kind, *push.data])
emit("done", got)
'''

_PUBLISHER = '''
kv = Raw()
counts = []
for seq in range(ARGS["count"]):
    if time.monotonic() > DEADLINE:
        break
    counts.append(kv.call("PUBLISH", "sequence", [ARGS["id"], seq]))
emit("done", counts)
'''


def test_subscribers_in_other_processes_receive_every_message_in_order(
        server: ServerProcess, connect: Connect) -> None:
    expect = len(TYPED_PAYLOADS) + PUBLISHER_PROCESSES * SEQUENCE_LENGTH
    subscribers = [Worker(server, _SUBSCRIBER, {"channels": ["typed", "sequence"],
                                                   "expect": expect})
                   for _ in range(SUBSCRIBER_PROCESSES)]
    for worker in subscribers:
        worker.expect("ready")
    publisher = connect()
    published_before = publisher.request("INFO", "stats")["stats"]["total_published_messages"]  # type: ignore[index]
    assert numsub(publisher, "typed", "sequence") == {"typed": SUBSCRIBER_PROCESSES,
                                                      "sequence": SUBSCRIBER_PROCESSES}
    publishers = [Worker(server, _PUBLISHER, {"id": index, "count": SEQUENCE_LENGTH})
                  for index in range(PUBLISHER_PROCESSES)]
    # Meanwhile, from this process: every kind of value, pipelined.
    publisher.send(*[["PUBLISH", "typed", payload] for payload in TYPED_PAYLOADS])
    assert publisher.read(len(TYPED_PAYLOADS)) == [(REPLY, SUBSCRIBER_PROCESSES)] * len(
        TYPED_PAYLOADS)
    for worker in publishers:
        assert worker.expect("done") == [SUBSCRIBER_PROCESSES] * SEQUENCE_LENGTH
    for worker in subscribers:
        got = worker.expect("done")
        assert len(got) == expect, f"{len(got)} of {expect} messages arrived"
        assert all(kind == "message" for kind, *_ in got)
        received_typed = [payload for _, channel, payload in got if channel == "typed"]
        assert typed(received_typed) == typed(TYPED_PAYLOADS)
        for index in range(PUBLISHER_PROCESSES):
            sequence = [payload[1] for _, channel, payload in got
                        if channel == "sequence" and payload[0] == index]
            assert sequence == list(range(SEQUENCE_LENGTH)), f"publisher {index}"
    for worker in subscribers + publishers:
        worker.finish()
    info = publisher.request("INFO", "stats")["stats"]  # type: ignore[index]
    assert info["total_published_messages"] - published_before == expect


def test_publish_counts_subscriptions_and_text_and_bytes_channels_differ(
        connect: Connect) -> None:
    publisher, text, raw, both = connect(), connect(), connect(), connect()
    assert publisher.request("PUBLISH", "ch", 1) == 0
    assert text.request("SUBSCRIBE", "ch") == 1
    assert raw.request("SUBSCRIBE", b"ch") == 1
    assert both.request("SUBSCRIBE", "ch", b"ch", "ch") == 2
    assert publisher.request("PUBLISH", "ch", "to text") == 2
    assert publisher.request("PUBLISH", b"ch", b"to bytes") == 2
    assert pushes(text.read(1)) == [("message", "ch", "to text")]
    assert pushes(raw.read(1)) == [("message", b"ch", b"to bytes")]
    assert pushes(both.read(2)) == [("message", "ch", "to text"),
                                    ("message", b"ch", b"to bytes")]
    # PUBLISH inside a transaction delivers at EXEC, and its count is in the envelope.
    publisher.request("MULTI")
    assert publisher.request("PUBLISH", "ch", "queued") == "QUEUED"
    assert text.quiet(0.1)
    assert publisher.request("EXEC") == [[0, 2]]
    assert pushes(text.read(1)) == [("message", "ch", "queued")]
    assert pushes(both.read(1)) == [("message", "ch", "queued")]
    for conn in (text, raw, both):
        assert conn.quiet(0.05), conn.backlog


# --- patterns ------------------------------------------------------------------------------


def test_psubscribe_matches_glob_patterns_and_sends_pmessage(connect: Connect) -> None:
    publisher, sub = connect(), connect()
    patterns = ["news.*", "h?llo", "[ab]x", "lit\\*", "[^a-y]z"]
    assert sub.request("PSUBSCRIBE", *patterns) == len(patterns)
    cases: list[tuple[object, str | None]] = [
        ("news.sport", "news.*"), ("news.", "news.*"), ("news", None), (b"news.raw", "news.*"),
        ("hello", "h?llo"), ("hallo", "h?llo"), ("hllo", None), ("heello", None),
        ("ax", "[ab]x"), ("bx", "[ab]x"), ("cx", None), ("lit*", "lit\\*"), ("litx", None),
        ("zz", "[^a-y]z"), ("az", None),
    ]
    for index, (channel, _) in enumerate(cases):
        expected = 0 if cases[index][1] is None else 1
        assert publisher.request("PUBLISH", channel, index) == expected, channel
    assert pushes(sub.read(sum(pattern is not None for _, pattern in cases))) == [
        ("pmessage", pattern, channel, index)
        for index, (channel, pattern) in enumerate(cases) if pattern is not None]
    assert sub.quiet(0.05)
    assert sub.request("PUNSUBSCRIBE", "news.*") == len(patterns) - 1
    assert publisher.request("PUBLISH", "news.sport", "gone") == 0
    assert publisher.request("PUBSUB", "NUMPAT") == len(patterns) - 1
    assert sub.request("PUNSUBSCRIBE") == 0
    assert publisher.request("PUBSUB", "NUMPAT") == 0
    assert sub.request("GET", "k") is None  # out of pub/sub mode


def test_a_channel_and_a_matching_pattern_both_deliver(connect: Connect) -> None:
    publisher, sub = connect(), connect()
    assert sub.request("SUBSCRIBE", "news.sport") == 1
    assert sub.request("PSUBSCRIBE", "news.*", "*.sport", "other.*") == 4
    assert publisher.request("PUBLISH", "news.sport", {"score": [2, 1]}) == 3
    got = pushes(sub.read(3))
    assert got[0] == ("message", "news.sport", {"score": [2, 1]})  # the channel first, as Redis
    assert sorted(got[1:]) == [("pmessage", "*.sport", "news.sport", {"score": [2, 1]}),
                               ("pmessage", "news.*", "news.sport", {"score": [2, 1]})]
    assert publisher.request("PUBLISH", "news.weather", "rain") == 1
    assert pushes(sub.read(1)) == [("pmessage", "news.*", "news.weather", "rain")]
    assert sub.quiet(0.05)


# --- pub/sub and normal commands on one connection -------------------------------------------


def test_a_subscribed_connection_refuses_normal_commands_and_keeps_its_pushes_in_order(
        connect: Connect) -> None:
    publisher, sub = connect(), connect()
    publisher.request("SET", "k", "value")
    assert sub.request("SUBSCRIBE", "ch") == 1
    for index in range(5):
        assert publisher.request("PUBLISH", "ch", index) == 1
    sub.send(["GET", "k"], ["SET", "k", "x"], ["PING"], ["PING", "hello"], ["MULTI"],
             ["BLPOP", "list", 0])
    for index in range(5, 10):
        assert publisher.request("PUBLISH", "ch", index) == 1
    messages = sub.read(16)
    # The first five were published before the commands were sent; the others race them.
    assert pushes(messages[:5]) == [("message", "ch", index) for index in range(5)]
    assert pushes([message for message in messages if message[0] == PUSH]) == [
        ("message", "ch", index) for index in range(10)]
    replies = [message for message in messages if message[0] != PUSH]
    for kind, error in [replies[0], replies[1], replies[4], replies[5]]:
        assert kind == ERROR and error.code == ErrorCode.ERR, error  # type: ignore[attr-defined]
        assert "not allowed while subscribed" in str(error)
    assert replies[2:4] == [(REPLY, "PONG"), (REPLY, "hello")]
    assert publisher.request("GET", "k") == "value"  # the refused SET did not run
    assert publisher.request("EXISTS", "list") == 0
    # UNSUBSCRIBE from everything: the same connection runs normal commands again.
    assert sub.request("UNSUBSCRIBE") == 0
    assert publisher.request("PUBLISH", "ch", "nobody") == 0
    assert sub.request("GET", "k") == "value"
    assert sub.request("SET", "k", "from the former subscriber") == "OK"
    assert sub.request("MULTI") == "OK"
    sub.request("INCR", "n")
    assert sub.request("EXEC") == [[0, 1]]
    assert sub.quiet(0.05)
    # And it may subscribe again.
    assert sub.request("SUBSCRIBE", "ch") == 1
    assert publisher.request("PUBLISH", "ch", "again") == 1
    assert pushes(sub.read(1)) == [("message", "ch", "again")]


_FLOOD = '''
kv = Raw()
emit("ready")
sequence = 0
end = time.monotonic() + ARGS["seconds"]
while time.monotonic() < end and time.monotonic() < DEADLINE:
    batch = [["PUBLISH", "a" if n % 2 else "b", sequence + n] for n in range(20)]
    kv.send(*batch)
    for _ in batch:
        kind, _count = kv.next()
        assert kind == REPLY, _count
    sequence += len(batch)
emit("done", sequence)
'''

_ROUND = [[["SUBSCRIBE", "a"], ["PSUBSCRIBE", "b*"], ["PING"]],
          [["UNSUBSCRIBE", "a"], ["GET", "k"]],
          [["PUNSUBSCRIBE"], ["GET", "k"], ["SUBSCRIBE", "a", "b"]],
          [["UNSUBSCRIBE"], ["SET", "k", "v"]]]
"""One round, sent as four writes a few milliseconds apart without waiting for replies,
so that messages are published between them (one write runs as one batch, between
whose commands nothing is published)."""
_REPLIES: list[tuple[int, object, set[str]]] = [
    (REPLY, 1, {"a"}), (REPLY, 2, {"a", "b*"}), (REPLY, "PONG", {"a", "b*"}),
    (REPLY, 1, {"b*"}), (ERROR, "not allowed while subscribed", {"b*"}),
    (REPLY, 0, set()), (REPLY, "value of k", set()), (REPLY, 2, {"a", "b"}),
    (REPLY, 0, set()), (REPLY, "OK", set()),
]
"""Each reply of a round, and the subscriptions whose pushes may follow it."""


def _send_round(conn: PushConnection) -> None:
    from kv_protocol.framing import encode_frame

    for index, chunk in enumerate(_ROUND):
        data = b"".join(encode_frame(command) for command in chunk)
        if index == 2:  # a frame split across two writes, too
            conn.sock.sendall(data[:5])
            time.sleep(0.002)
            data = data[5:]
        conn.sock.sendall(data)
        time.sleep(0.003)


def test_pipelined_subscribe_and_unsubscribe_never_confuse_replies_with_pushes(
        server: ServerProcess, connect: Connect) -> None:
    """While another process floods channels a and b, one connection pipelines rounds of
    (un)subscriptions and normal commands: every reply arrives in order, each push only
    while its subscription holds, and none after the UNSUBSCRIBE that ends them all."""
    sub = connect()
    flood = Worker(server, _FLOOD, {"seconds": PIPELINE_ROUNDS_S})
    flood.expect("ready")
    end = time.monotonic() + PIPELINE_ROUNDS_S - 0.3
    rounds = pushes_seen = 0
    last: dict[object, int] = {}
    value: object = None
    while time.monotonic() < end:
        _send_round(sub)
        subscribed: set[str] = set()
        for want_kind, want, then_subscribed in _REPLIES:
            while True:
                [(kind, payload)] = sub.read(1)
                if kind != PUSH:
                    break
                assert isinstance(payload, Push) and payload.kind in ("message", "pmessage")
                subscription = payload.data[0]
                channel, seq = payload.data[-2:]
                assert subscription in subscribed, (rounds, want, payload)
                assert isinstance(seq, int) and seq > last.get(channel, -1), (seq, last)
                last[channel] = seq
                pushes_seen += 1
            assert kind == want_kind, (rounds, want, kind, payload)
            if kind == ERROR:
                assert str(want) in str(payload), payload
            else:
                assert payload == (value if want == "value of k" else want), (rounds, payload)
            subscribed = then_subscribed
        value = "v"
        rounds += 1
    assert sub.quiet(0.1), sub.backlog  # nothing after the last UNSUBSCRIBE
    published = flood.expect("done")
    flood.finish()
    assert rounds >= 10 and published > 0, (rounds, published)
    assert pushes_seen > 0, "no message arrived while subscribed: the test proves nothing"


# --- PUBSUB introspection and departures ------------------------------------------------------


def test_pubsub_channels_numsub_and_numpat(connect: Connect) -> None:
    admin, one, two, three = connect(), connect(), connect(), connect()
    assert admin.request("PUBSUB", "CHANNELS") == []
    assert admin.request("PUBSUB", "NUMPAT") == 0
    one.request("SUBSCRIBE", "news.sport", "news.weather", b"raw")
    two.request("SUBSCRIBE", "news.sport")
    two.request("PSUBSCRIBE", "news.*")
    three.request("PSUBSCRIBE", "news.*", "other.?")
    assert sorted(admin.request("PUBSUB", "CHANNELS"), key=repr) == sorted(  # type: ignore[arg-type]
        ["news.sport", "news.weather", b"raw"], key=repr)
    assert sorted(admin.request("PUBSUB", "CHANNELS", "news.s*")) == ["news.sport"]  # type: ignore[arg-type]
    assert admin.request("PUBSUB", "CHANNELS", "nothing*") == []
    assert numsub(admin, "news.sport", "news.weather", b"raw", "missing") == {
        "news.sport": 2, "news.weather": 1, b"raw": 1, "missing": 0}
    assert numsub(admin) == {}
    assert admin.request("PUBSUB", "NUMPAT") == 2  # distinct patterns
    info = admin.request("INFO")
    assert info["clients"]["pubsub_clients"] == 3  # type: ignore[index]
    assert info["stats"]["pubsub_channels"] == 3  # type: ignore[index]
    assert info["stats"]["pubsub_patterns"] == 2  # type: ignore[index]
    one.request("UNSUBSCRIBE", "news.sport", "never-subscribed")
    assert numsub(admin, "news.sport") == {"news.sport": 1}
    three.request("PUNSUBSCRIBE", "other.?")
    assert admin.request("PUBSUB", "NUMPAT") == 1
    ids = [entry["id"] for entry in admin.request("CLIENT", "LIST")]  # type: ignore[attr-defined]
    entries = {entry["id"]: entry for entry in admin.request("CLIENT", "LIST")}  # type: ignore[attr-defined]
    assert sorted((entries[i]["sub"], entries[i]["psub"]) for i in ids) == [
        (0, 0), (0, 1), (1, 1), (2, 0)]


_PARKED_SUBSCRIBER = '''
kv = Raw()
assert kv.call("SUBSCRIBE", "parked") == 1
assert kv.call("PSUBSCRIBE", "parked.*") == 2
emit("ready")
time.sleep(DEADLINE - time.monotonic())
'''


def test_a_subscriber_that_goes_away_is_forgotten(server: ServerProcess,
                                                  connect: Connect) -> None:
    admin = connect()
    closing = connect()
    closing.request("SUBSCRIBE", "parked", "closing-only")
    killed = Worker(server, _PARKED_SUBSCRIBER)
    killed.expect("ready")
    assert numsub(admin, "parked", "closing-only") == {"parked": 2, "closing-only": 1}
    assert admin.request("PUBLISH", "parked.x", 1) == 1
    assert admin.request("PUBLISH", "parked", 1) == 2

    closing.close()
    wait_until(lambda: numsub(admin, "parked") == {"parked": 1}, what="the closed subscriber leaving")
    assert admin.request("PUBSUB", "CHANNELS") == ["parked"]

    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait()
    wait_until(lambda: numsub(admin, "parked") == {"parked": 0}, what="the killed subscriber leaving")
    assert admin.request("PUBSUB", "NUMPAT") == 0
    assert admin.request("PUBSUB", "CHANNELS") == []
    assert admin.request("PUBLISH", "parked", 2) == 0
    assert admin.request("PUBLISH", "parked.x", 2) == 0
    assert admin.request("INFO", "clients")["clients"]["pubsub_clients"] == 0  # type: ignore[index]


def test_client_kill_of_a_subscriber_sends_its_messages_then_the_notice(connect: Connect) -> None:
    admin, sub = connect(), connect()
    sub_id = sub.request("CLIENT", "ID")
    sub.request("SUBSCRIBE", "ch")
    for index in range(3):
        admin.request("PUBLISH", "ch", index)
    assert admin.request("CLIENT", "KILL", "ID", sub_id) == 1
    got = pushes(sub.closed())
    assert got[:3] == [("message", "ch", index) for index in range(3)]
    assert got[3][0] == "kill" and len(got) == 4, got
    wait_until(lambda: numsub(admin, "ch") == {"ch": 0}, what="the killed subscriber leaving")


# --- a subscriber that never reads -----------------------------------------------------------

_FAST_READER = '''
kv = Raw()
assert kv.call("SUBSCRIBE", "flood") == 1
emit("ready")
count = 0
while count < ARGS["expect"] and time.monotonic() < DEADLINE:
    kind, push = kv.next()
    assert kind == PUSH and push.kind == "message", (kind, push)
    assert push.data[1][0] == count, (push.data[1][0], count)
    assert len(push.data[1][1]) == ARGS["size"]
    count += 1
    if count % ARGS["every"] == 0:
        emit("progress", count)
emit("done", count)
'''


def test_a_subscriber_that_never_reads_is_cut_off_and_memory_stays_bounded(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--pubsub-buffer-limit", str(BUFFER_LIMIT_BYTES))
    admin, publisher, slow = PushConnection(server), PushConnection(server), PushConnection(server)
    slow_id = slow.request("CLIENT", "ID")
    assert slow.request("SUBSCRIBE", "flood") == 1
    fast = Worker(server, _FAST_READER, {"expect": FLOOD_MESSAGES, "size": FLOOD_PAYLOAD_BYTES,
                                         "every": FLOOD_BATCH})
    fast.expect("ready")
    assert numsub(admin, "flood") == {"flood": 2}
    rss_before = vm_rss_kib(server.proc.pid)
    payload = b"x" * FLOOD_PAYLOAD_BYTES
    counts: list[object] = []
    started = time.monotonic()
    for first in range(0, FLOOD_MESSAGES, FLOOD_BATCH):
        publisher.send(*[["PUBLISH", "flood", [seq, payload]]
                         for seq in range(first, first + FLOOD_BATCH)])
        counts += [reply for _, reply in publisher.read(FLOOD_BATCH, timeout_s=20)]
        # In step with the reader that keeps up, so that only the one that never
        # reads can pass the limit, however the processes are scheduled.
        assert fast.expect("progress") == first + FLOOD_BATCH
    elapsed = time.monotonic() - started
    rss_after = vm_rss_kib(server.proc.pid)
    # The publisher was served throughout: every PUBLISH answered, 2 receivers, then 1.
    assert set(counts) == {1, 2} and counts == sorted(counts, reverse=True), set(counts)
    assert elapsed < 30
    assert fast.expect("done") == FLOOD_MESSAGES  # the reader that keeps up keeps everything
    fast.finish()
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_KIB, (rss_before, rss_after)
    assert numsub(admin, "flood") == {"flood": 0}
    assert admin.request("INFO", "stats")["stats"]["total_output_buffer_disconnects"] == 1  # type: ignore[index]
    wait_until(lambda: client_gone(admin, slow_id), what="the slow subscriber's removal")
    assert re.search(rf"client {slow_id}\b.*limit", server.log()), server.log()
    # What the slow subscriber got before it was cut: whole messages, in order, no gap
    # (a last frame may be cut short), then the end of the connection.
    received = [message for message in slow.closed(timeout_s=20) if message[0] == PUSH]
    data = [payload.data for _, payload in received if payload.kind == "message"]  # type: ignore[attr-defined]
    assert [seq for _, (seq, _) in data] == list(range(len(data)))
    assert counts.count(2) >= len(data)
    for conn in (admin, publisher, slow):
        conn.close()
    assert server.stop() == 0, server.log()


def client_gone(admin: PushConnection, client_id: object) -> bool:
    return all(entry["id"] != client_id for entry in admin.request("CLIENT", "LIST"))  # type: ignore[attr-defined]
