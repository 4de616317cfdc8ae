"""A work queue on one list: P producers RPUSH, C consumers BLPOP, every item accounted for.

Each producer and each consumer is a process with one blocking connection.
Producer ``p`` pushes its share of the items, ``p:seq`` zero-padded to
``PAYLOAD_BYTES``, as ``RPUSH key item`` commands pipelined ``PUSH_BATCH`` per write
(``--realtime-push-batch``)
(one batch in flight). Each consumer sends one ``BLPOP key BLPOP_TIMEOUT_S`` at a
time, as a worker of a real queue does, and checks the reply's bytes against the
shape it expects (``_realtime`` rule 1). Once every producer has finished, the
parent appends one ``SENTINEL`` per consumer: the list is FIFO, so they come after
every item, and a consumer stops at the first it pops. The list's length at that
moment (the backlog) tells whether the consumers kept up (then their BLPOPs
waited for items) or not (then they found items waiting).

Accounting: each consumer counts the items of each producer and sums their
sequence numbers. Every item arrived exactly once when, for every producer, the
count equals what it pushed and the sum is 0 + 1 + ... + (pushed - 1); a shortfall
is reported as lost items, anything else (an item twice, an altered item) is an
error. The rate is items popped over the time from "go" to the last item popped.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from kv_protocol.framing import FrameDecoder

from ._loadgen import ERROR_ROOM_BYTES, VARYING_REPLY_BYTES, _recv_counted
from ._realtime import GRACE_S, PAYLOAD_BYTES, Crew, Sample, Wire, blpop_request, pop_reply, shares
from ._server_process import proc_cpu_s
from ._wire import KvWire

# RPUSH commands per write (the default of --realtime-push-batch); the next batch goes
# once their replies are in. At 10 a producer outruns the consumers, which then find
# items waiting; at 1 it is slower than a few of them, which then wait in BLPOP.
PUSH_BATCH: Final = 10
BLPOP_TIMEOUT_S: Final = 1  # a consumer looks at its deadline at least this often
SENTINEL: Final = b"stop".ljust(PAYLOAD_BYTES, b".")  # "no more items": one per consumer
PRODUCER_DIGITS: Final = 3  # items are "ppp:sequence": up to 999 producers
MAX_PRODUCERS: Final = 10 ** PRODUCER_DIGITS - 1


def item(producer: int, sequence: int) -> bytes:
    return b"%0*d:%0*d" % (PRODUCER_DIGITS, producer, PAYLOAD_BYTES - PRODUCER_DIGITS - 1, sequence)


@dataclass(frozen=True, slots=True)
class ProducerResult:
    producer: int
    pushed: int
    finished: float
    cpu_s: float


@dataclass(frozen=True, slots=True)
class ConsumerResult:
    counts: dict[int, int]  # producer -> items of it popped
    sums: dict[int, int]  # producer -> the sum of their sequence numbers
    last_item: float  # perf_counter time the last item (not the sentinel) arrived; 0.0 if none
    timeouts: int  # BLPOPs that waited BLPOP_TIMEOUT_S for nothing
    stopped: bool  # it popped its sentinel (False: its deadline passed first)
    cpu_s: float


def producer(start: Callable[[], None], wire: Wire, key: str, number: int, items: int,
             seconds: float, batch: int = PUSH_BATCH) -> ProducerResult:
    """Push ``items`` items (fewer if ``seconds`` pass first), ``batch`` per write."""
    commands = [wire.encode(["RPUSH", key, item(number, n)]) for n in range(items)]
    batches = [(b"".join(commands[i:i + batch]), len(commands[i:i + batch]))
               for i in range(0, items, batch)]
    buffer = bytearray(batch * VARYING_REPLY_BYTES + ERROR_ROOM_BYTES)
    pushed = 0
    with wire.connect() as sock:
        start()
        cpu_started = time.process_time()
        deadline = time.perf_counter() + seconds
        for data, count in batches:
            sock.sendall(data)
            _recv_counted(sock, wire, buffer, count)  # raises on an error reply
            pushed += count
            if time.perf_counter() > deadline:
                break
        finished = time.perf_counter()
    return ProducerResult(number, pushed, finished, time.process_time() - cpu_started)


class _Popper:
    """One BLPOP at a time on a blocking socket, its reply checked byte for byte."""

    def __init__(self, wire: Wire, key: str) -> None:
        self.request = blpop_request(wire, key, BLPOP_TIMEOUT_S)
        full = pop_reply(wire, key, SENTINEL)
        self.null = pop_reply(wire, key, None)
        # Where the item sits in a reply: the last PAYLOAD_BYTES of a kv frame, before
        # the final CRLF in RESP.
        self.item_end = full.rfind(SENTINEL) + PAYLOAD_BYTES
        self.prefix, self.suffix = full[:self.item_end - PAYLOAD_BYTES], full[self.item_end:]
        self.size = len(full)
        self.buffer = bytearray(self.size + ERROR_ROOM_BYTES)
        self.view = memoryview(self.buffer)

    def pop(self, sock: socket.socket) -> bytes | None:
        """The next item, or None when BLPOP timed out."""
        sock.sendall(self.request)
        end, view, null, prefix, size = 0, self.view, self.null, self.prefix, self.size
        while end < size:
            n = sock.recv_into(view[end:])
            if not n:
                raise ConnectionError("the server closed the connection")
            end += n
            if end == len(null) and view[:end] == null:
                return None
            head = bytes(view[:min(end, len(prefix))])
            if not (prefix.startswith(head) or null.startswith(head[:len(null)])):
                raise RuntimeError(f"BLPOP answered {bytes(view[:end])[:80]!r}")
        got = bytes(view[:end])
        if end != size or not got.startswith(prefix) or not got.endswith(self.suffix):
            raise RuntimeError(f"BLPOP answered {got[:80]!r}")
        return got[self.item_end - PAYLOAD_BYTES:self.item_end]


def consumer(start: Callable[[], None], wire: Wire, key: str, seconds: float) -> ConsumerResult:
    """Pop items until a sentinel arrives (or ``seconds`` plus the grace pass)."""
    popper = _Popper(wire, key)
    counts: dict[int, int] = {}
    sums: dict[int, int] = {}
    last = 0.0
    timeouts = 0
    stopped = False
    clock = time.perf_counter
    with wire.connect() as sock:
        start()
        cpu_started = time.process_time()
        deadline = clock() + seconds + GRACE_S
        while clock() < deadline:
            got = popper.pop(sock)
            if got is None:
                timeouts += 1
                continue
            if got == SENTINEL:
                stopped = True
                break
            last = clock()
            number, sequence = int(got[:PRODUCER_DIGITS]), int(got[PRODUCER_DIGITS + 1:])
            counts[number] = counts.get(number, 0) + 1
            sums[number] = sums.get(number, 0) + sequence
    return ConsumerResult(counts, sums, last, timeouts, stopped, time.process_time() - cpu_started)


@dataclass(frozen=True, slots=True)
class Queue:
    """One queue run's settings."""

    producers: int
    consumers: int
    items: int
    seconds: float
    batch: int = PUSH_BATCH

    @property
    def label(self) -> str:
        return f"{self.producers}/{self.consumers}"


def _stop_consumers(wire: Wire, key: str, consumers: int, sock: socket.socket) -> int:
    """Append the sentinels; how many items were still waiting in the list."""
    sock.sendall(wire.encode(["LLEN", key]) + wire.encode(["RPUSH", key, *[SENTINEL] * consumers]))
    buffer = bytearray(2 * VARYING_REPLY_BYTES + ERROR_ROOM_BYTES)
    end = _recv_counted(sock, wire, buffer, 2)
    if not isinstance(wire, KvWire):
        return int(buffer[1:buffer.index(b"\r\n")])
    reply = FrameDecoder().feed(bytes(buffer[:end]))[0]  # [0, length]: _recv_counted checked it
    assert isinstance(reply, list) and isinstance(reply[1], int)
    return reply[1]


def _account(pushed: dict[int, int], consumers: list[ConsumerResult]) -> int:
    """Items popped, once each was popped at most once and unaltered.

    Raises:
        RuntimeError: an item was popped twice or altered (counts and sums disagree).
    """
    popped = 0
    for number, count in pushed.items():
        got = sum(c.counts.get(number, 0) for c in consumers)
        total = sum(c.sums.get(number, 0) for c in consumers)
        if got > count or (got == count and total != count * (count - 1) // 2):
            raise RuntimeError(f"producer {number} pushed {count} items; consumers popped {got} "
                               f"whose sequence numbers add up to {total}: duplicated or altered items")
        popped += got
    if any(n not in pushed for c in consumers for n in c.counts):
        raise RuntimeError("consumers popped items no producer pushed (was the list empty at the start?)")
    return popped


def measure_queue(wire: Wire, pid: int | None, key: str, setting: Queue) -> Sample:
    """One run against one server; the list ``key`` must not exist.

    Raises:
        RuntimeError: a worker failed (its message), items were popped twice or
            altered, or a worker sent nothing in time.
    """
    with Crew() as crew, wire.connect() as control:
        for number, items in enumerate(shares(setting.items, setting.producers)):
            crew.start(producer, wire, key, number, items, setting.seconds, setting.batch)
        for _ in range(setting.consumers):
            crew.start(consumer, wire, key, setting.seconds)
        cpu_before = proc_cpu_s(pid)
        began = crew.release()
        deadline = began + setting.seconds + 2 * GRACE_S
        backlog = 0
        producers: list[ProducerResult] = []
        consumers: list[ConsumerResult] = []
        for _ in crew.procs:
            result = crew.result(deadline)
            if isinstance(result, ProducerResult):
                producers.append(result)
                if len(producers) == setting.producers:  # every item is in: the sentinels go last
                    backlog = _stop_consumers(wire, key, setting.consumers, control)
            else:
                consumers.append(result)
        cpu_after = proc_cpu_s(pid)
    pushed = {p.producer: p.pushed for p in producers}
    popped = _account(pushed, consumers)
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Sample(sum(pushed.values()), sum(pushed.values()), popped,
                  max(p.finished for p in producers) - began,
                  max(0.0, max(c.last_item for c in consumers) - began), server_cpu,
                  sum(p.cpu_s for p in producers) + sum(c.cpu_s for c in consumers), backlog)
