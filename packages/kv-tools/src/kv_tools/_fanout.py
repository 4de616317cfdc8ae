"""Pub/sub fan-out: one publisher, many subscribers, every message counted where it arrives.

One publisher process sends ``PUBLISH channel payload`` in pipelined batches
(``PUBLISH_BATCH``, ``--realtime-pipeline``), one batch in flight, and checks that each reply counts every
subscriber. The subscribers' connections are spread over ``--procs`` processes, each
of which waits on all of its sockets at once with ``selectors`` (epoll), so that the
client side costs little per message: a ``recv_into`` of whatever arrived (many
messages at a time), a comparison of those bytes with the messages expected at that
offset of the stream, and a sum (``_realtime`` rule 1). A lost, repeated, reordered
or altered message therefore fails the comparison or leaves a subscriber short; a
connection the server closes (its output buffer limit) is counted and its missing
messages reported as lost.

Bounds: the publisher stops after ``messages`` publishes or ``seconds``, whichever
comes first, and tells the subscribers how many it published; they stop once each
connection has that many, or ``_realtime.GRACE_S`` later.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ._loadgen import ERROR_ROOM_BYTES, VARYING_REPLY_BYTES, _recv_counted, _recv_exact
from ._realtime import (
    GRACE_S,
    Crew,
    Sample,
    Wire,
    integer_reply,
    payload,
    push_frame,
    shares,
    subscribed_reply,
)
from ._server_process import proc_cpu_s

# PUBLISH commands per write (the default of --realtime-pipeline); the next batch goes
# once their replies are in. At 16 the publisher's round trips bound both servers
# (0.5 to 0.85 of a core busy); from 64 to 128 each server keeps a core busy.
PUBLISH_BATCH: Final = 128
RECEIVE_BYTES: Final = 256 * 1024  # what one recv_into may take: a backlog of thousands of messages
POLL_S: Final = 0.05  # how long a subscriber process waits on its sockets between checks of its goal


@dataclass(frozen=True, slots=True)
class PublisherResult:
    published: int
    finished: float
    cpu_s: float


@dataclass(frozen=True, slots=True)
class SubscriberResult:
    messages: int  # received, over all of this process's connections
    disconnected: int  # connections the server closed
    last_arrival: float  # perf_counter time of the last bytes received; 0.0 when none came
    cpu_s: float


def publisher(start: Callable[[], None], wire: Wire, channel: str, messages: int, subscribers: int,
              seconds: float, published: Any, batch: int = PUBLISH_BATCH) -> PublisherResult:
    """Publish ``messages`` payloads, ``batch`` per write; set ``published`` at the end."""
    commands = [wire.encode(["PUBLISH", channel, payload(n)]) for n in range(messages)]
    batches = [(b"".join(commands[i:i + batch]), len(commands[i:i + batch]))
               for i in range(0, messages, batch)]
    one = integer_reply(wire, subscribers)
    buffer = bytearray(batch * VARYING_REPLY_BYTES + ERROR_ROOM_BYTES)
    sent = 0
    with wire.connect() as sock:
        start()
        cpu_started = time.process_time()
        deadline = time.perf_counter() + seconds
        for data, count in batches:
            sock.sendall(data)
            end = _recv_counted(sock, wire, buffer, count)
            if buffer[:end] != one * count:
                raise RuntimeError(f"PUBLISH should reach {subscribers} subscribers, it answered "
                                   f"{bytes(buffer[:end])[:80]!r}")
            sent += count
            if time.perf_counter() > deadline:
                break
        finished = time.perf_counter()
    published.value = sent
    return PublisherResult(sent, finished, time.process_time() - cpu_started)


def _subscribe(wire: Wire, channel: str) -> socket.socket:
    """A connection subscribed to ``channel``, its confirmation read, made non-blocking."""
    sock = wire.connect()
    try:
        sock.sendall(wire.encode(["SUBSCRIBE", channel]))
        expected = subscribed_reply(wire, channel)
        got = bytearray(len(expected))
        _recv_exact(sock, memoryview(got))
        if got != expected:
            raise RuntimeError(f"SUBSCRIBE answered {bytes(got)!r}, expected {expected!r}")
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def subscriber(start: Callable[[], None], wire: Wire, channel: str, connections: int, messages: int,
               seconds: float, published: Any) -> SubscriberResult:
    """Receive on ``connections`` subscribed connections until each has every message published."""
    stream = b"".join(push_frame(wire, channel, payload(n)) for n in range(messages))
    size = len(stream) // messages  # every push has the same length (rule 1 of _realtime)
    socks: list[socket.socket] = []
    try:
        socks.extend(_subscribe(wire, channel) for _ in range(connections))  # closed below if one fails
        with selectors.DefaultSelector() as selector:
            for index, sock in enumerate(socks):
                selector.register(sock, selectors.EVENT_READ, index)
            received = [0] * connections
            arrived = [0.0] * connections
            buffer = bytearray(RECEIVE_BYTES)
            view = memoryview(buffer)
            clock, startswith = time.perf_counter, stream.startswith
            start()
            cpu_started = time.process_time()
            deadline = clock() + seconds + GRACE_S
            goal, goal_known = messages * size, False
            done = closed = 0
            while done + closed < connections and clock() < deadline:
                for key, _ in selector.select(POLL_S):
                    index = key.data
                    try:
                        n = key.fileobj.recv_into(view)  # type: ignore[union-attr]
                    except BlockingIOError:
                        continue
                    if not n:  # the server closed it: what it did not receive is lost
                        selector.unregister(key.fileobj)
                        closed += 1
                        continue
                    offset = received[index]
                    if not startswith(view[:n], offset):
                        raise RuntimeError(f"a subscriber received {bytes(view[:min(n, 80)])!r} where "
                                           f"{stream[offset:offset + min(n, 80)]!r} was expected "
                                           f"(message {offset // size})")
                    received[index] = offset = offset + n
                    arrived[index] = clock()
                    if offset == goal:
                        done += 1
                if not goal_known and published.value >= 0:  # the publisher has finished
                    goal, goal_known = published.value * size, True
                    done = sum(r >= goal for r in received)
                    if any(r > goal for r in received):
                        raise RuntimeError("a subscriber received more messages than were published")
            cpu_s = time.process_time() - cpu_started
    finally:
        for sock in socks:
            sock.close()
    return SubscriberResult(sum(received) // size, closed, max(arrived), cpu_s)


@dataclass(frozen=True, slots=True)
class Fanout:
    """One fan-out run's settings."""

    subscribers: int
    messages: int
    procs: int  # subscriber processes
    seconds: float
    batch: int = PUBLISH_BATCH


def measure_fanout(wire: Wire, pid: int | None, channel: str, fanout: Fanout) -> Sample:
    """One run: a publisher and ``fanout.procs`` subscriber processes against one server.

    Raises:
        RuntimeError: a worker failed (its message), a PUBLISH did not reach every
            subscriber, a message arrived altered, or a worker sent nothing in time.
    """
    with Crew() as crew:
        published = crew.counter()
        crew.start(publisher, wire, channel, fanout.messages, fanout.subscribers, fanout.seconds,
                   published, fanout.batch)
        for connections in shares(fanout.subscribers, min(fanout.procs, fanout.subscribers)):
            crew.start(subscriber, wire, channel, connections, fanout.messages, fanout.seconds,
                       published)
        cpu_before = proc_cpu_s(pid)
        began = crew.release()
        deadline = began + fanout.seconds + 2 * GRACE_S
        results = [crew.result(deadline) for _ in crew.procs]
        cpu_after = proc_cpu_s(pid)
    (pub,) = [r for r in results if isinstance(r, PublisherResult)]
    subs = [r for r in results if isinstance(r, SubscriberResult)]
    arrived = sum(r.messages for r in subs)
    last = max(r.last_arrival for r in subs)
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Sample(pub.published, pub.published * fanout.subscribers, arrived, pub.finished - began,
                  max(0.0, last - began), server_cpu, pub.cpu_s + sum(r.cpu_s for r in subs))
