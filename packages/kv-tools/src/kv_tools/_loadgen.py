"""The load-generating worker of kv-bench: blocking sockets, batches, exact replies.

Each worker process holds several connections. Every round it sends one batch of
``pipeline`` commands on each connection, then reads each connection's replies. The
replies of a test are known in advance, so checking them is a bytes comparison and
the loader spends its CPU on the sockets, not on decoding (as ../shared/bench's
loadgen). Latency is the round trip of a batch: from its send to the last byte of
its replies.

Three wire formats share the workload: kv (handshake, then ``[0, value]`` replies),
RESP for redis-server, and the bare CBOR frames of the reference server in
../shared/bench (no handshake, bare values).
"""

from __future__ import annotations

import random
import socket
import time
from array import array
from dataclasses import dataclass, field
from typing import Final, Protocol

from kv_client import ClientConfig
from kv_client._sync import SyncConnection
from kv_protocol.framing import encode_frame
from kv_protocol.messages import encode_reply

KEY_WIDTH: Final = 12  # key:000000000042 is 16 characters, like redis-benchmark's keys


def key_name(number: int) -> str:
    return f"key:{number:0{KEY_WIDTH}d}"


@dataclass(frozen=True, slots=True)
class Test:
    """One benchmark test: the command it sends and the reply it expects."""

    name: str
    command: tuple[str, ...]  # "{key}" and "{value}" are filled in per request
    reply: str  # "ok", "value"
    prefill: bool = False


TESTS: Final = {
    "ping": Test("ping", ("PING",), "pong"),
    "set": Test("set", ("SET", "{key}", "{value}"), "ok"),
    "get": Test("get", ("GET", "{key}"), "value", prefill=True),
}


class Wire(Protocol):
    def connect(self) -> socket.socket: ...

    def encode(self, parts: list[str | bytes]) -> bytes: ...

    def reply(self, test: Test, value: bytes) -> bytes: ...


def _tcp(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass(frozen=True, slots=True)
class KvWire:
    host: str
    port: int
    password: str = field(repr=False)

    def connect(self) -> socket.socket:
        connection = SyncConnection(ClientConfig(self.password, host=self.host, port=self.port,
                                                 name="kv-bench", timeout_s=30))
        return connection.sock

    def encode(self, parts: list[str | bytes]) -> bytes:
        return encode_frame(parts)

    def reply(self, test: Test, value: bytes) -> bytes:
        return encode_reply({"ok": "OK", "pong": "PONG", "value": value}[test.reply])


@dataclass(frozen=True, slots=True)
class ReferenceWire:
    """The minimal server of ../shared/bench: no handshake, bare values both ways."""

    host: str
    port: int

    def connect(self) -> socket.socket:
        return _tcp(self.host, self.port)

    def encode(self, parts: list[str | bytes]) -> bytes:
        return encode_frame(parts)

    def reply(self, test: Test, value: bytes) -> bytes:
        if test.reply == "pong":
            raise ValueError("the reference server only knows SET and GET")
        return encode_frame({"ok": "OK", "value": value}[test.reply])


@dataclass(frozen=True, slots=True)
class RespWire:
    host: str
    port: int

    def connect(self) -> socket.socket:
        return _tcp(self.host, self.port)

    def encode(self, parts: list[str | bytes]) -> bytes:
        raw = [p.encode() if isinstance(p, str) else p for p in parts]
        return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in raw)

    def reply(self, test: Test, value: bytes) -> bytes:
        if test.reply == "value":
            return b"$%d\r\n%s\r\n" % (len(value), value)
        return {"ok": b"+OK\r\n", "pong": b"+PONG\r\n"}[test.reply]


def command(test: Test, number: int, value: bytes) -> list[str | bytes]:
    fill: dict[str, str | bytes] = {"{key}": key_name(number), "{value}": value}
    return [fill.get(part, part) for part in test.command]


def _recv_exact(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("the server closed the connection")
        got += n


def prefill(wire: Wire, keyspace: int, value: bytes) -> None:
    """Set every key of the keyspace, so that GET replies are known in advance."""
    sock = wire.connect()
    test = TESTS["set"]
    with sock:
        for start in range(0, keyspace, 500):
            numbers = range(start, min(start + 500, keyspace))
            sock.sendall(b"".join(wire.encode(command(test, n, value)) for n in numbers))
            expected = wire.reply(test, value) * len(numbers)
            got = bytearray(len(expected))
            _recv_exact(sock, memoryview(got))
            if got != expected:
                raise RuntimeError(f"prefill: unexpected reply {bytes(got[:60])!r}")


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


@dataclass(frozen=True, slots=True)
class WorkerResult:
    requests: int
    started: float
    finished: float
    latencies_us: bytes  # array('d') of batch round trips


def run_worker(job: Job, ready: object, go: object) -> WorkerResult:
    """Run one worker's share; ``ready``/``go`` are a queue and an event from the parent."""
    rng = random.Random(job.seed)
    socks = [job.wire.connect() for _ in range(job.connections)]
    batches = [
        b"".join(job.wire.encode(command(job.test, rng.randrange(job.keyspace), job.value))
                 for _ in range(job.pipeline))
        for _ in range(64)
    ]
    expected = job.wire.reply(job.test, job.value) * job.pipeline
    buffer = bytearray(len(expected))
    view = memoryview(buffer)
    for sock in socks:  # warm-up round, and a check that the replies are what we expect
        sock.sendall(batches[0])
        _recv_exact(sock, view)
        if buffer != expected:
            raise RuntimeError(f"{job.test.name}: unexpected reply {bytes(buffer[:60])!r}")
    ready.put(job.seed)  # type: ignore[attr-defined]
    go.wait(60)  # type: ignore[attr-defined]
    latencies = array("d")
    sent_at = [0.0] * len(socks)
    rounds = max(1, job.requests // (job.connections * job.pipeline))
    clock = time.perf_counter
    started = clock()
    deadline = started + job.seconds
    done = 0
    for r in range(rounds):
        batch = batches[r % 64]
        for i, sock in enumerate(socks):
            sent_at[i] = clock()
            sock.sendall(batch)
        for i, sock in enumerate(socks):
            _recv_exact(sock, view)
            latencies.append((clock() - sent_at[i]) * 1e6)
            if buffer != expected:
                raise RuntimeError(f"{job.test.name}: unexpected reply {bytes(buffer[:60])!r}")
        done += 1
        if clock() > deadline:
            break
    finished = clock()
    for sock in socks:
        sock.close()
    return WorkerResult(done * job.connections * job.pipeline, started, finished, latencies.tobytes())
