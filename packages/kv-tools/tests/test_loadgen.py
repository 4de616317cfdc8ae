"""The load loop against real servers: a few requests of each test, every reply checked.

kv-server runs as a process (tests-integration's ``start_server``), redis-server too
when it is installed. ``run_worker`` raises on the first error or unexpected reply,
so a finished run means that every request got a good reply; the servers' state
afterwards shows that every request was carried out.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_helpers import PASSWORD, redis_server_path, start_redis_server, start_server
from kv_protocol.framing import FrameDecoder
from kv_tools._bench import main as bench_main
from kv_tools._loadgen import Job, WorkerResult, _recv_counted, prepare, run_worker
from kv_tools._wire import HASH_FIELDS, TESTS, KvWire, RespWire, Wire
from kv_tools._wire import Test as BenchTest

CONNECTIONS, PIPELINE, REQUESTS = 2, 4, 40  # 5 rounds of 2 batches of 4
WARM_UP = CONNECTIONS * PIPELINE  # one batch per connection before the run
KEYSPACE = 50
SECONDS = 10.0  # bounds each run; a few requests take milliseconds
NEW = ["incr", "lpush", "rpush", "lpop", "rpop", "hset", "hget", "mset"]


@pytest.fixture(scope="module")
def kv_wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    server = start_server(tmp_path_factory.mktemp("kv") / "data")
    try:
        yield KvWire(server.host, server.port, PASSWORD)
    finally:
        assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def redis_wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    redis = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield RespWire(redis.host, redis.port)
    finally:
        redis.stop()


@pytest.fixture(params=["kv", "redis"])
def wire(request: pytest.FixtureRequest) -> Wire:
    return request.getfixturevalue(f"{request.param}_wire")  # type: ignore[no-any-return]


def run(wire: Wire, name: str, *, pops: int = REQUESTS + 2 * WARM_UP) -> WorkerResult:
    """One worker's run of ``name``, in this process, after the data it assumes."""
    prepare(wire, TESTS[name], KEYSPACE, b"xyz", pops=pops)
    go = threading.Event()
    go.set()
    job = Job(wire, TESTS[name], CONNECTIONS, PIPELINE, REQUESTS, SECONDS, KEYSPACE, b"xyz", seed=1)
    return run_worker(job, queue.Queue(), go)


def integers(wire: Wire, *commands: list[str | bytes | int]) -> list[int]:
    """The integer replies of ``commands`` (integers are typed in kv, text in RESP)."""
    typed = [[str(p) if isinstance(wire, RespWire) and isinstance(p, int) else p for p in parts]
             for parts in commands]
    with wire.connect() as sock:
        sock.sendall(b"".join(wire.encode(parts) for parts in typed))  # type: ignore[arg-type]
        data = bytearray(4096)
        end = _recv_counted(sock, wire, data, len(commands))
    if isinstance(wire, KvWire):
        return [reply[1] for reply in FrameDecoder().feed(bytes(data[:end]))]  # type: ignore[index]
    return [int(line[1:]) for line in bytes(data[:end]).split(b"\r\n")[:-1]]


def counter_total(wire: Wire) -> int:
    return sum(integers(wire, *[["INCRBY", f"counter:{n:012d}", 0] for n in range(KEYSPACE)]))


def test_each_new_test_gets_good_replies_and_does_its_work(wire: Wire) -> None:
    before = counter_total(wire)
    assert run(wire, "incr").requests == REQUESTS
    assert counter_total(wire) - before == REQUESTS + WARM_UP

    prepare(wire, TESTS["lpop"], KEYSPACE, b"xyz", pops=0)  # an empty list
    assert run(wire, "lpush").requests == REQUESTS
    assert run(wire, "rpush").requests == REQUESTS
    assert integers(wire, ["LLEN", "mylist"]) == [2 * (REQUESTS + WARM_UP)]

    for name in ("lpop", "rpop"):  # the list holds more than a run pops, so none finds it empty
        assert run(wire, name, pops=REQUESTS + WARM_UP + 1).requests == REQUESTS
        assert integers(wire, ["LLEN", "mylist"]) == [1]

    assert run(wire, "hset").requests == REQUESTS  # every reply 0: every field was there
    assert run(wire, "hget").requests == REQUESTS  # every reply the value
    assert integers(wire, ["HLEN", f"hash:{KEYSPACE - 1:012d}"]) == [HASH_FIELDS]

    assert run(wire, "mset").requests == REQUESTS  # every reply OK


def test_an_error_reply_stops_the_run(wire: Wire) -> None:
    prepare(wire, TESTS["get"], KEYSPACE, b"xyz", pops=0)  # key:... now hold bytes
    incr_bytes = BenchTest("incr", ("INCR", "{key}"), "varies")
    job = Job(wire, incr_bytes, 1, PIPELINE, REQUESTS, SECONDS, KEYSPACE, b"xyz", seed=1)
    go = threading.Event()
    go.set()
    with pytest.raises(RuntimeError, match="incr: error reply"):
        run_worker(job, queue.Queue(), go)


def test_kv_bench_runs_the_new_tests_end_to_end(kv_wire: KvWire, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    code = bench_main(["-p", str(kv_wire.port), "-a", PASSWORD, "-c", "2", "--procs", "1", "-n", "200",
                       "-P", "4", "-r", str(KEYSPACE), "--seconds", str(SECONDS), "-t", ",".join(NEW)])
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = [line.split() for line in out.out.splitlines()[3:]]
    assert [row[:2] for row in rows] == [[name, "kv"] for name in NEW]
    assert all(float(row[2].replace(",", "")) > 0 for row in rows)


def test_kv_bench_open_loop_keeps_its_rate_and_writes_csv(
        kv_wire: KvWire, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_main(["-p", str(kv_wire.port), "-a", PASSWORD, "-c", "4", "--procs", "1", "-n", "400",
                       "-r", str(KEYSPACE), "--seconds", str(SECONDS), "-t", "get,ping", "--rate", "2000",
                       "--csv"])
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert [(row["test"], row["server"], row["rate"]) for row in rows] == [
        ("get", "kv", "2000.0"), ("ping", "kv", "2000.0")]
    for row in rows:  # 400 requests due over 0.2 s: the achieved rate is close to 2,000/s
        assert 1_000 < float(row["requests_per_s"]) < 2_500
        assert 0 < float(row["p50_us"]) <= float(row["p90_us"]) <= float(row["p99_us"]) <= float(
            row["p999_us"])


def test_kv_bench_expiry_measures_pauses_until_the_keys_are_gone(
        kv_wire: KvWire, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_main(["-p", str(kv_wire.port), "-a", PASSWORD, "--expiry", "2000"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "keys loaded          2,000" in out.out
    assert "PING during expiry   max" in out.out and "deadline -> all gone" in out.out
