"""What ``kv-bench --realtime`` sends and expects, and how its worker processes are run.

The pub/sub and queue benchmarks (``_fanout``, ``_queue_bench``) share three things:
the exact bytes each server sends for a push, a count or a pop, on either wire (kv
frames or RESP); a sample of one run; and a crew of worker processes released
together by one event.

Rules:

1. Every payload and item has the same length (``PAYLOAD_BYTES``), so every push
   and every pop reply of a run has the same length too: receivers check what
   arrives against bytes built in advance (a ``memcmp``), and count by length,
   without decoding a frame per message.
2. Times are ``time.perf_counter()``, which on Linux is CLOCK_MONOTONIC, one clock
   for every process of the machine: a run lasts from the parent's "go" to the last
   arrival any worker saw.
3. A worker's error goes back to the parent as a string, which raises it; every
   wait of the parent has a time limit, and on the way out every worker that is
   still alive is killed.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kv_protocol.framing import encode_frame
from kv_protocol.messages import encode_push, encode_reply

from ._wire import KvWire, RespWire

PAYLOAD_BYTES: Final = 16  # every published message and every queue item
START_TIMEOUT_S: Final = 120.0  # spawning a worker and connecting it, on a loaded machine
GRACE_S: Final = 60.0  # past --seconds: for the backlog to drain and the results to arrive
JOIN_TIMEOUT_S: Final = 10.0  # a worker that sent its result exits at once
POLL_S: Final = 0.5  # how often the parent, waiting for workers, checks that none has died
Wire = KvWire | RespWire


def payload(number: int) -> bytes:
    """Message ``number`` of a fan-out run: its decimal digits, zero-padded."""
    return b"%0*d" % (PAYLOAD_BYTES, number)


def _resp_bulk(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def subscribed_reply(wire: Wire, channel: str) -> bytes:
    """The reply to ``SUBSCRIBE channel`` on a connection with no other subscription."""
    if isinstance(wire, KvWire):
        return encode_reply(1)
    return b"*3\r\n" + _resp_bulk("subscribe") + _resp_bulk(channel) + b":1\r\n"


def push_frame(wire: Wire, channel: str, message: bytes) -> bytes:
    """What a subscriber of ``channel`` receives for ``PUBLISH channel message``."""
    if isinstance(wire, KvWire):
        return encode_push("message", channel, message)
    return b"*3\r\n" + _resp_bulk("message") + _resp_bulk(channel) + _resp_bulk(message)


def integer_reply(wire: Wire, number: int) -> bytes:
    return encode_reply(number) if isinstance(wire, KvWire) else b":%d\r\n" % number


def blpop_request(wire: Wire, key: str, timeout_s: int) -> bytes:
    """``BLPOP key timeout``: kv takes the timeout as a number, RESP as text."""
    if isinstance(wire, KvWire):
        return encode_frame(["BLPOP", key, timeout_s])
    return wire.encode(["BLPOP", key, str(timeout_s)])


def pop_reply(wire: Wire, key: str, item: bytes | None) -> bytes:
    """BLPOP's reply: ``[key, item]``, or null when its timeout passed."""
    if isinstance(wire, KvWire):
        return encode_reply(None if item is None else [key, item])
    return b"*-1\r\n" if item is None else b"*2\r\n" + _resp_bulk(key) + _resp_bulk(item)


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal shares, the larger ones first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


@dataclass(frozen=True, slots=True)
class Sample:
    """One run of one workload against one server.

    For the fan-out ``sent`` is the publishes, ``expected`` the publishes times the
    subscribers and ``arrived`` the messages the subscribers received; for a queue
    ``sent`` and ``expected`` are the items pushed and ``arrived`` those popped.
    """

    sent: int
    expected: int
    arrived: int
    send_s: float  # from "go" to the publisher's (the last producer's) last reply
    wall_s: float  # from "go" to the last arrival
    server_cpu_s: float | None
    client_cpu_s: float  # every worker process's CPU time from "go" to its end
    backlog: int | None = None  # a queue's length when the last producer finished

    @property
    def rate(self) -> float:
        """Messages delivered, or items popped, per second."""
        return self.arrived / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def send_rate(self) -> float:
        return self.sent / self.send_s if self.send_s > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.expected - self.arrived


def _run(work: Callable[..., object], ready: Any, go: Any, results: Any, args: tuple[object, ...]) -> None:
    """A worker process: ``work(start, *args)``, which calls ``start()`` once it is ready."""
    def start() -> None:
        ready.put(None)
        if not go.wait(START_TIMEOUT_S):
            raise RuntimeError(f"no 'go' within {START_TIMEOUT_S:g} s")

    try:
        results.put(work(start, *args))
    except Exception as exc:  # reported by the parent, which would otherwise wait for its timeout
        message = f"{work.__name__}: {exc}" if isinstance(exc, RuntimeError) else f"{work.__name__}: {exc!r}"
        ready.put(message)  # whichever of the two the parent is waiting on
        results.put(message)


class Crew:
    """Worker processes (spawned) that get ready, start on one event, and send one result each.

    Use as a context manager: leaving it joins the workers, killing those still alive.
    """

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.ready, self.results, self.go = self.context.Queue(), self.context.Queue(), self.context.Event()
        self.procs: list[Any] = []

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for proc in self.procs:
            if exc_info[0] is not None:  # the others would wait for "go", or load a server for nothing
                proc.kill()
            proc.join(JOIN_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_TIMEOUT_S)

    def counter(self) -> Any:
        """A number shared with the workers (e.g. how many messages were published), -1 at first."""
        return self.context.Value("q", -1, lock=False)

    def start(self, work: Callable[..., object], *args: object) -> None:
        proc = self.context.Process(target=_run, args=(work, self.ready, self.go, self.results, args))
        proc.start()
        self.procs.append(proc)

    def release(self) -> float:
        """Wait until every worker is ready, then start them all; when they were started."""
        deadline = time.perf_counter() + START_TIMEOUT_S
        for _ in self.procs:
            self._get(self.ready, deadline)
        began = time.perf_counter()
        self.go.set()
        return began

    def result(self, deadline: float) -> Any:
        """The next result to arrive, waiting until ``deadline`` (a perf_counter time) at most."""
        return self._get(self.results, deadline)

    def _get(self, source: Any, deadline: float) -> Any:
        """The next item from ``source``; a worker's error message, or its death, raises."""
        while True:
            try:
                item = source.get(timeout=POLL_S)
                break
            except queue.Empty:
                pass
            dead = [proc.exitcode for proc in self.procs if proc.exitcode not in (None, 0)]
            if dead:  # it could not even report an error (e.g. it failed to start)
                raise RuntimeError(f"a worker process exited with status {dead[0]}") from None
            if time.perf_counter() > deadline:
                raise RuntimeError("a worker process sent nothing in time") from None
        if isinstance(item, str):
            raise RuntimeError(item)
        return item
