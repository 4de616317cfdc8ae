"""Open-loop load for ``kv-bench --rate``: batches sent at fixed times, latency from those times.

A closed loop (the default) sends a connection's next batch when the last reply is
in, so it measures latency at saturation and, when the server stalls, simply sends
less: the stall hides itself ("coordinated omission", Gil Tene; wrk2's ``-R``).
An open loop keeps to a timetable whatever the server does.

Rules:

1. A worker's send k (k = 0, 1, ...) is due at ``start + k * interval``, where
   ``interval = pipeline / rate`` and ``rate`` is this worker's share of the total
   in requests/s. It goes out on connection ``k % connections``. No send is skipped
   or merged: a worker that falls behind sends everything due at once.
2. A batch's latency runs from the time it was *due*, not from when it left, so a
   stall of the server (or of the loader) counts against every batch it delayed.
3. Replies are read whenever a socket is readable, so a connection may have several
   batches outstanding; they complete in order (one connection is one ordered stream).
4. Sending stops at ``-n`` or ``--seconds``, whichever comes first; the replies still
   outstanding then get ``DRAIN_TIMEOUT_S`` to arrive, and a run with missing replies
   fails rather than report a latency it did not see.
"""

from __future__ import annotations

import selectors
import socket
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ._wire import Test, Wire

RECEIVE_BYTES: Final = 256 * 1024  # every reply a connection has outstanding, usually in one recv
DRAIN_TIMEOUT_S: Final = 10.0  # after the last send, for the replies still outstanding
# epoll's millisecond rounding, and a little more: the last stretch before each due
# time is polled, which costs the generator CPU but keeps its lateness out of the
# figures (measured: p50 at 300 req/s on one connection went from 725 us to 120 us,
# beside 91 us closed loop).
TIMER_SLACK_S: Final = 0.0015


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each send of one worker is due (rule 1); pure arithmetic, no clock."""

    start: float  # perf_counter seconds of send 0
    interval: float  # seconds between two sends of this worker
    count: int  # sends in all

    @classmethod
    def for_rate(cls, start: float, rate: float, pipeline: int, count: int) -> Schedule:
        """The timetable of ``count`` batches of ``pipeline`` requests at ``rate`` requests/s."""
        if rate <= 0:
            raise ValueError("the rate must be positive")
        return cls(start, pipeline / rate, count)

    def at(self, k: int) -> float:
        """When send ``k`` is due."""
        return self.start + k * self.interval

    def due(self, now: float) -> int:
        """How many sends are due by ``now`` (sends 0 .. due-1)."""
        if now < self.start:
            return 0
        return min(self.count, int((now - self.start) / self.interval) + 1)

    def latency_us(self, k: int, done_at: float) -> float:
        """Send ``k``'s latency (rule 2): from when it was due to ``done_at``."""
        return (done_at - self.at(k)) * 1e6


class ReplyCounter:
    """Replies arriving on one connection, counted as they complete and checked.

    Known replies (``Wire.reply``) are compared byte for byte, a partial one too, so
    an error reply stops the run at once; replies that vary go through ``Wire.scan``.
    """

    def __init__(self, wire: Wire, test: Test, value: bytes) -> None:
        self.wire, self.name = wire, test.name
        self.expected = wire.reply(test, value)
        self.buffer = bytearray()

    def feed(self, data: bytes) -> int:
        """Take ``data``; return how many more replies are complete."""
        buffer = self.buffer
        buffer += data
        if self.expected is None:
            try:
                count, end = self.wire.scan(buffer, 0, len(buffer))
            except RuntimeError as exc:
                raise RuntimeError(f"{self.name}: {exc}") from None
            del buffer[:end]
            return count
        size = len(self.expected)
        count = len(buffer) // size
        if buffer != (self.expected * (count + 1))[:len(buffer)]:
            raise RuntimeError(f"{self.name}: unexpected reply {bytes(buffer[:60])!r}")
        del buffer[:count * size]
        return count


def run_open_loop(wire: Wire, test: Test, value: bytes, socks: Sequence[socket.socket],
                  batches: Sequence[bytes], schedule: Schedule, pipeline: int, seconds: float,
                  progress: Callable[[int], None] | None = None) -> tuple[int, float, array[float]]:
    """Send ``batches`` (cycled) on ``socks`` by ``schedule``; wait for every reply.

    Args:
        progress: called with the requests completed so far, as they complete.

    Returns:
        Requests completed, when the last reply arrived, and each batch's latency in
        microseconds measured from its due time.

    Raises:
        RuntimeError: an error or unexpected reply, or replies missing after the drain.
    """
    clock = time.perf_counter
    counters = [ReplyCounter(wire, test, value) for _ in socks]
    outstanding: list[deque[int]] = [deque() for _ in socks]
    unread = [0] * len(socks)  # replies read toward each connection's oldest batch
    latencies: array[float] = array("d")
    selector = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        # A send that cannot finish (the server stopped reading while its replies to
        # us back up) fails after this long instead of hanging the run.
        sock.settimeout(DRAIN_TIMEOUT_S)
        selector.register(sock, selectors.EVENT_READ, i)
    stop_sending = schedule.start + seconds
    sent = done = 0
    last = clock()
    drain_until: float | None = None
    with selector:
        while True:
            now = clock()
            if now < stop_sending and sent < schedule.count:
                for k in range(sent, schedule.due(now)):
                    socks[k % len(socks)].sendall(batches[k % len(batches)])
                    outstanding[k % len(socks)].append(k)
                sent = max(sent, schedule.due(now))
            if sent < schedule.count and now < stop_sending:
                # epoll rounds timeouts up to whole milliseconds: sleep to within one
                # of the due time, then poll without waiting, so the generator's own
                # lateness is not charged to the server.
                wait = min(schedule.at(sent), stop_sending) - clock()
                timeout = wait - TIMER_SLACK_S if wait > TIMER_SLACK_S else 0.0
            else:
                if done == sent:
                    break
                drain_until = drain_until or now + DRAIN_TIMEOUT_S
                if now > drain_until:
                    raise RuntimeError(f"{test.name}: {sent - done} batches unanswered "
                                       f"{DRAIN_TIMEOUT_S:.0f} s after the last send")
                timeout = drain_until - now
            for key, _ in selector.select(timeout):
                i = key.data
                data = socks[i].recv(RECEIVE_BYTES)
                if not data:
                    raise ConnectionError("the server closed the connection")
                unread[i] += counters[i].feed(data)
                last = clock()
                while unread[i] >= pipeline:
                    unread[i] -= pipeline
                    latencies.append(schedule.latency_us(outstanding[i].popleft(), last))
                    done += 1
                if progress is not None:
                    progress(done * pipeline)
    return done * pipeline, last, latencies
