"""The load-generating worker of kv-bench: blocking sockets, batches, checked replies.

Each worker process holds several connections. Every round it sends one batch of
``pipeline`` commands on each connection, then reads each connection's replies.
Most tests' replies are known in advance, so checking them is a bytes comparison and
the loader spends its CPU on the sockets, not on decoding (as ../shared/bench's
loadgen); the others are counted and checked for errors (see ``_wire``). Latency is
the round trip of a batch: from its send to the last byte of its replies.

With ``--rate`` a worker sends by a timetable instead (``_openloop``), and a
batch's latency runs from when it was due.

Each worker builds 64 batches of random keys up front and cycles through them, so
that drawing keys costs nothing during the run.
"""

from __future__ import annotations

import random
import socket
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Final

from ._openloop import Schedule, run_open_loop
from ._wire import HASH_FIELDS, LIST_KEY, Test, Wire, command, field_name, key_name

PREPARE_BATCH: Final = 500  # commands per write while preparing data
LIST_CHUNK: Final = 1000  # elements per RPUSH while filling the list for the pop tests
BATCHES: Final = 64  # distinct batches each worker cycles through
# Room for a batch of replies that vary: an integer reply is at most 15 bytes in kv
# and 23 in RESP; the rest leaves room to read an error reply whole.
VARYING_REPLY_BYTES: Final = 64
ERROR_ROOM_BYTES: Final = 64 * 1024


def _recv_exact(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("the server closed the connection")
        got += n


def _recv_counted(sock: socket.socket, wire: Wire, data: bytearray, count: int) -> int:
    """Read exactly ``count`` replies of any length into ``data``; raise on an error reply.

    Returns:
        Where the replies end in ``data``.
    """
    view = memoryview(data)
    end = pos = seen = 0
    while seen < count:
        if end == len(view):
            raise RuntimeError(f"more reply bytes than {count} replies should take")
        n = sock.recv_into(view[end:])
        if not n:
            raise ConnectionError("the server closed the connection")
        end += n
        found, pos = wire.scan(data, pos, end)
        seen += found
    if pos != end:
        raise RuntimeError(f"bytes after the {count} replies expected: {bytes(data[pos:end])[:60]!r}")
    return end


def _round_trips(wire: Wire, commands: Iterable[list[str | bytes]]) -> None:
    """Send ``commands`` on one connection in batches, checking that none fails."""
    sock = wire.connect()
    buffer = bytearray(PREPARE_BATCH * VARYING_REPLY_BYTES + ERROR_ROOM_BYTES)
    it = iter(commands)
    with sock:
        while batch := list(islice(it, PREPARE_BATCH)):
            sock.sendall(b"".join(wire.encode(parts) for parts in batch))
            _recv_counted(sock, wire, buffer, len(batch))


def _list_fill(value: bytes, elements: int) -> Iterator[list[str | bytes]]:
    yield ["DEL", LIST_KEY]
    for start in range(0, elements, LIST_CHUNK):
        yield ["RPUSH", LIST_KEY, *[value] * min(LIST_CHUNK, elements - start)]


def prepare(wire: Wire, test: Test, keyspace: int, value: bytes, pops: int) -> None:
    """Write the data ``test``'s replies assume (its ``prefill``); run before each run.

    Args:
        pops: an upper bound on the requests of the run, so that a pop test's list
            holds more elements than the run can pop and no pop finds it empty.
    """
    commands: Iterable[list[str | bytes]]
    if not test.prefill:
        return
    if test.prefill == "strings":
        commands = (["SET", key_name(n), value] for n in range(keyspace))
    elif test.prefill == "hashes":
        fields = [part for f in range(HASH_FIELDS) for part in (field_name(f), value)]
        commands = (["HSET", key_name(n, "hash"), *fields] for n in range(keyspace))
    else:
        commands = _list_fill(value, pops)
    try:
        _round_trips(wire, commands)
    except RuntimeError as exc:
        raise RuntimeError(f"{test.name}: preparing data: {exc}") from None


@dataclass(frozen=True, slots=True)
class Job:
    wire: Wire
    test: Test
    connections: int
    pipeline: int
    requests: int  # for this worker
    seconds: float
    keyspace: int
    value: bytes
    seed: int
    rate: float = 0.0  # this worker's requests/s in open loop (--rate); 0: closed loop
    phase_s: float = 0.0  # open loop: when its first batch is due, after "go"


@dataclass(frozen=True, slots=True)
class WorkerResult:
    requests: int
    started: float
    finished: float
    latencies_us: bytes  # array('d') of batch round trips


def _batch(job: Job, rng: random.Random) -> bytes:
    with_field = "{field}" in job.test.command
    parts = []
    for _ in range(job.pipeline):
        number = rng.randrange(job.keyspace)
        field = rng.randrange(HASH_FIELDS) if with_field else 0
        more = [rng.randrange(job.keyspace) for _ in range(job.test.keys - 1)]
        parts.append(job.wire.encode(command(job.test, number, job.value, field, more)))
    return b"".join(parts)


def _reader(job: Job) -> Callable[[socket.socket], None]:
    """Read and check one batch of replies: a bytes comparison when they are known."""
    expected = job.wire.reply(job.test, job.value)
    name, wire, pipeline = job.test.name, job.wire, job.pipeline
    if expected is None:
        varying = bytearray(pipeline * VARYING_REPLY_BYTES + ERROR_ROOM_BYTES)

        def read_counted(sock: socket.socket) -> None:
            try:
                _recv_counted(sock, wire, varying, pipeline)
            except RuntimeError as exc:
                raise RuntimeError(f"{name}: {exc}") from None

        return read_counted
    expected *= pipeline
    buffer = bytearray(len(expected))
    view = memoryview(buffer)

    def read_exact(sock: socket.socket) -> None:
        _recv_exact(sock, view)
        if buffer != expected:
            raise RuntimeError(f"{name}: unexpected reply {bytes(buffer[:60])!r}")

    return read_exact


def run_worker(job: Job, ready: object, go: object,
               progress: Callable[[int], None] | None = None) -> WorkerResult:
    """Run one worker's share; ``ready``/``go`` are a queue and an event from the parent.

    Bounded in count (``job.requests``, at least one batch per connection) and in
    time (``job.seconds``, checked after each round). With ``job.rate`` the batches
    go out by a timetable instead (``_openloop``). ``progress`` is called with the
    requests done so far, after each round.
    """
    rng = random.Random(job.seed)
    socks = [job.wire.connect() for _ in range(job.connections)]
    batches = [_batch(job, rng) for _ in range(BATCHES)]
    read = _reader(job)
    clock = time.perf_counter
    try:
        for sock in socks:  # warm-up round, and a check that the replies are what we expect
            sock.sendall(batches[0])
            read(sock)
        ready.put(job.seed)  # type: ignore[attr-defined]
        go.wait(60)  # type: ignore[attr-defined]
        if job.rate:
            count = max(1, job.requests // job.pipeline)
            schedule = Schedule.for_rate(clock() + job.phase_s, job.rate, job.pipeline, count)
            requests, finished, latencies = run_open_loop(
                job.wire, job.test, job.value, socks, batches, schedule, job.pipeline, job.seconds,
                progress)
            return WorkerResult(requests, schedule.start, finished, latencies.tobytes())
        latencies = array("d")
        sent_at = [0.0] * len(socks)
        rounds = max(1, job.requests // (job.connections * job.pipeline))
        per_round = job.connections * job.pipeline
        started = clock()
        deadline = started + job.seconds
        done = 0
        for r in range(rounds):
            batch = batches[r % BATCHES]
            for i, sock in enumerate(socks):
                sent_at[i] = clock()
                sock.sendall(batch)
            for i, sock in enumerate(socks):
                read(sock)
                latencies.append((clock() - sent_at[i]) * 1e6)
            done += 1
            if progress is not None:
                progress(done * per_round)
            if clock() > deadline:
                break
        finished = clock()
    finally:
        for sock in socks:
            sock.close()
    return WorkerResult(done * per_round, started, finished, latencies.tobytes())
