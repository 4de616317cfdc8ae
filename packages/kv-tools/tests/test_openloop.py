"""The open loop's timetable and latency arithmetic, then one run over a socket pair."""

import socket
import threading
import time

import pytest

from kv_tools._openloop import ReplyCounter, Schedule, run_open_loop
from kv_tools._wire import TESTS, KvWire, RespWire


def test_sends_are_due_at_fixed_intervals_from_the_rate() -> None:
    schedule = Schedule.for_rate(start=100.0, rate=1_000, pipeline=4, count=10)
    assert schedule.interval == pytest.approx(0.004)  # 250 batches of 4 a second
    assert [schedule.at(k) for k in (0, 1, 9)] == pytest.approx([100.0, 100.004, 100.036])


def test_due_counts_every_send_whose_time_has_come_and_never_more_than_count() -> None:
    schedule = Schedule(start=10.0, interval=0.5, count=5)
    assert [schedule.due(t) for t in (9.99, 10.0, 10.49, 10.5, 11.2, 12.0, 99.0)] == [0, 1, 1, 2, 3, 5, 5]


def test_a_late_loader_owes_every_send_it_missed() -> None:
    """Rule 1: nothing is skipped; after a 1 s stall, 1 s worth of sends are due at once."""
    schedule = Schedule(start=0.0, interval=0.01, count=1_000)
    assert schedule.due(0.0) == 1
    assert schedule.due(1.0) - schedule.due(0.0) == 100


def test_latency_runs_from_the_due_time_not_the_send_time() -> None:
    """Rule 2: a batch due at 1.000 s, sent late at 1.050 s, answered at 1.051 s took 51 ms."""
    schedule = Schedule(start=1.0, interval=0.001, count=10)
    assert schedule.latency_us(0, 1.051) == pytest.approx(51_000)
    assert schedule.latency_us(3, 1.004) == pytest.approx(1_000)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Schedule.for_rate(0.0, 0, 1, 1)


def test_reply_counter_counts_known_replies_across_reads_and_stops_at_a_wrong_one() -> None:
    counter = ReplyCounter(RespWire("h", 1), TESTS["ping"], b"")
    assert counter.feed(b"+PONG\r\n+PO") == 1
    assert counter.feed(b"NG\r\n+PONG\r\n") == 2
    with pytest.raises(RuntimeError, match="ping: unexpected reply"):
        counter.feed(b"-ERR no\r\n")


def test_reply_counter_scans_replies_that_vary() -> None:
    counter = ReplyCounter(RespWire("h", 1), TESTS["incr"], b"")
    assert counter.feed(b":1\r\n:22\r\n:3") == 2
    assert counter.feed(b"33\r\n") == 1
    with pytest.raises(RuntimeError, match="incr: error reply"):
        counter.feed(b"-WRONGTYPE x\r\n")
    assert ReplyCounter(KvWire("h", 1, "p"), TESTS["set"], b"").expected is not None


def _stalling_pong_server(sock: socket.socket, stall_after: int, stall_s: float) -> None:
    """Answer each PING with PONG, but sleep ``stall_s`` before answering ping ``stall_after``."""
    answered, pending = 0, b""
    with sock:
        while data := sock.recv(65536):
            pending += data
            while pending.startswith(b"*1\r\n$4\r\nPING\r\n"):
                pending = pending[14:]
                if answered == stall_after:
                    time.sleep(stall_s)
                sock.sendall(b"+PONG\r\n")
                answered += 1


def test_a_server_stall_counts_against_every_request_it_delayed() -> None:
    """200 pings at 2,000/s (one every 0.5 ms) with a 50 ms stall at the 10th.

    A closed loop would see one slow request; the open loop sees the ~100 requests
    that fell due during the stall each waiting for it, so p50 shows the stall.
    """
    ours, theirs = socket.socketpair()
    server = threading.Thread(target=_stalling_pong_server, args=(theirs, 10, 0.05), daemon=True)
    server.start()
    wire = RespWire("h", 1)
    schedule = Schedule.for_rate(time.perf_counter() + 0.01, 2_000, 1, 200)
    with ours:
        requests, finished, latencies = run_open_loop(
            wire, TESTS["ping"], b"", [ours], [wire.encode(["PING"])], schedule, 1, seconds=5.0)
    server.join(5)
    assert requests == 200 and len(latencies) == 200
    assert finished >= schedule.at(199)
    slow = sum(1 for latency in latencies if latency > 10_000)
    assert slow >= 60, sorted(latencies)[::20]
